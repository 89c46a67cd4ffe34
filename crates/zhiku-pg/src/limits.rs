//! Requests per user per minute across every server replica: one token bucket per user in the
//! database (an unlogged table: a crash forgets who was close to the limit, nothing more).

use crate::{PgStore, Result};

impl PgStore {
    /// Takes one request from `user`'s bucket of `per_minute` (refilled continuously, bursts up
    /// to a minute's worth); `Err(seconds)` to wait when it is empty.
    pub fn take_request(&mut self, user: &str, per_minute: u32) -> Result<std::result::Result<(), u64>> {
        if per_minute == 0 {
            return Ok(Ok(()));
        }
        let capacity = f64::from(per_minute);
        self.client.execute(
            "INSERT INTO rate_bucket (user_name, tokens, at) VALUES ($1, $2, clock_timestamp()) ON CONFLICT DO NOTHING",
            &[&user, &capacity],
        )?;
        // One statement reads, refills and takes, under the row's lock: replicas never both
        // spend the last token.
        let row = self.client.query_one(
            "UPDATE rate_bucket SET
                 allowed = least($2::float8, tokens + extract(epoch FROM clock_timestamp() - at)::float8 * $2::float8 / 60.0) >= 1,
                 tokens = least($2::float8, tokens + extract(epoch FROM clock_timestamp() - at)::float8 * $2::float8 / 60.0)
                          - CASE WHEN least($2::float8, tokens + extract(epoch FROM clock_timestamp() - at)::float8 * $2::float8 / 60.0) >= 1 THEN 1 ELSE 0 END,
                 at = clock_timestamp()
             WHERE user_name = $1
             RETURNING allowed, tokens",
            &[&user, &capacity],
        )?;
        let (allowed, tokens): (bool, f64) = (row.get(0), row.get(1));
        Ok(if allowed { Ok(()) } else { Err(((1.0 - tokens) * 60.0 / capacity).ceil().max(1.0) as u64) })
    }
}
