//! pgvector's `vector` type in its binary wire format: dimension (u16), a reserved u16, then
//! the components as big-endian f32 (pgvector's `vector_send` / `vector_recv`).

use std::error::Error as StdError;

use postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

#[derive(Debug, Clone, PartialEq)]
pub struct Vector(pub Vec<f32>);

/// pgvector's own limit on a `vector`'s dimension.
const MAX_DIMENSION: usize = 16_000;

impl ToSql for Vector {
    fn to_sql(&self, _: &Type, out: &mut postgres::types::private::BytesMut) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        if self.0.len() > MAX_DIMENSION {
            return Err(format!("a vector has at most {MAX_DIMENSION} dimensions, this one {}", self.0.len()).into());
        }
        out.extend_from_slice(&(self.0.len() as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        for x in &self.0 {
            out.extend_from_slice(&x.to_be_bytes());
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Vector {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        if raw.len() < 4 {
            return Err("truncated vector".into());
        }
        let dimension = u16::from_be_bytes([raw[0], raw[1]]) as usize;
        let body = &raw[4..];
        if body.len() != dimension * 4 {
            return Err(format!("vector of {dimension} dimensions carries {} bytes", body.len()).into());
        }
        Ok(Vector(body.chunks_exact(4).map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect()))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}
