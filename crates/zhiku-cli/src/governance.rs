//! Commands that govern access: users, groups, roles, document ACLs, API keys, the audit log.
//! The command line is the local administrator (whoever can open the data directory can change
//! anything in it), and every change it makes is audited as `cli:<login name>`.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde_json::json;
use zhiku_core::Principal;
use zhiku_rag::accounts::Accounts;
use zhiku_rag::audit::AuditLog;
use zhiku_store::{AuditEvent, AuditFilter, Scope};

use crate::cli::{AuditCommand, GroupCommand, KeyCommand, LdapCommand, UserCommand};
use crate::commands::{engine, open_store, Ctx};

/// Who the command line acts as, for the audit log.
pub fn cli_actor() -> String {
    let login = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    let login: String = login.chars().filter(|c| c.is_alphanumeric() || "._-@".contains(*c)).take(64).collect();
    format!("cli:{}", if login.is_empty() { "local" } else { &login })
}

pub fn audit(log: &dyn AuditLog, action: &str, kb: Option<&str>, detail: serde_json::Value) -> Result<()> {
    log.append(&AuditEvent { actor: &cli_actor(), action, kb, detail }).context("cannot write the audit log")?;
    Ok(())
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input (pipe it in: `echo … | zhiku user add NAME --password-stdin`)");
    }
    Ok(password)
}

pub fn user(ctx: &Ctx, cmd: UserCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    user_on(store.as_ref(), store.as_ref(), cmd)
}

/// `zhiku user` over either backend's accounts.
pub fn user_on(accounts: &dyn Accounts, log: &dyn AuditLog, cmd: UserCommand) -> Result<ExitCode> {
    match cmd {
        UserCommand::Add { name, admin, password_stdin } => {
            let password = if password_stdin { Some(read_password()?) } else { None };
            if !accounts.create_user(&name, password.as_deref(), admin)? {
                bail!("user '{name}' exists already; change it with `zhiku user set`");
            }
            audit(log, "user.create", None, json!({ "user": name, "admin": admin, "password": password.is_some() }))?;
            eprintln!("user {name} created");
        }
        UserCommand::Set { name, admin, disabled, password_stdin } => {
            if accounts.user(&name)?.is_none() {
                bail!("no user '{name}'; create it with `zhiku user add`");
            }
            if password_stdin {
                accounts.set_password(&name, &read_password()?)?;
            }
            if let Some(admin) = admin {
                accounts.set_user_admin(&name, admin)?;
            }
            if let Some(disabled) = disabled {
                accounts.set_user_disabled(&name, disabled)?;
            }
            audit(log, "user.update", None, json!({ "user": name, "admin": admin, "disabled": disabled, "password": password_stdin }))?;
            eprintln!("user {name} updated");
        }
        UserCommand::Remove { name } => {
            if !accounts.delete_user(&name)? {
                bail!("no user '{name}'");
            }
            audit(log, "user.delete", None, json!({ "user": name }))?;
            eprintln!("user {name} removed, its keys revoked");
        }
        UserCommand::List { json } => {
            let users = accounts.users()?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "users": users }))?);
            } else {
                for u in users {
                    let mut flags = vec![u.origin.as_str()];
                    if u.admin {
                        flags.push("admin");
                    }
                    if u.disabled {
                        flags.push("disabled");
                    }
                    if u.has_password {
                        flags.push("password");
                    }
                    println!("{}\t{}", u.name, flags.join(","));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A group member as given: `alice`, `user:alice` or `group:backend`.
pub(crate) fn member(value: &str) -> Result<Principal> {
    let principal = if value.contains(':') { Principal::parse(value) } else { Principal::user(value) };
    principal.with_context(|| format!("invalid member '{value}': use a user name, user:<name> or group:<name>"))
}

pub fn group(ctx: &Ctx, cmd: GroupCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    match cmd {
        GroupCommand::AddMember { group, members } => {
            Principal::group(&group).context("invalid group name")?;
            for m in &members {
                match member(m)?.as_str().split_once(':') {
                    Some(("group", child)) => store.add_subgroup(&group, child)?,
                    Some((_, user)) => store.add_group_member(&group, user)?,
                    None => unreachable!("a principal has a kind"),
                }
            }
            audit(&store, "group.add", None, json!({ "group": group, "members": members }))?;
        }
        GroupCommand::RemoveMember { group, members } => {
            for m in &members {
                let removed = match member(m)?.as_str().split_once(':') {
                    Some(("group", child)) => store.remove_subgroup(&group, child)?,
                    Some((_, user)) => store.remove_group_member(&group, user)?,
                    None => unreachable!("a principal has a kind"),
                };
                if !removed {
                    eprintln!("note: {m} was not in {group}");
                }
            }
            audit(&store, "group.remove", None, json!({ "group": group, "members": members }))?;
        }
        GroupCommand::List => {
            for (g, u) in store.group_members()? {
                println!("group:{g}\tuser:{u}");
            }
            for (parent, child) in store.subgroups()? {
                println!("group:{parent}\tgroup:{child}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn kb_grant(ctx: &Ctx, kb: &str, principal: &str, role: Option<zhiku_core::Role>) -> Result<ExitCode> {
    let principal = Principal::parse(principal)?;
    let engine = engine(ctx)?;
    let change = engine.set_kb_role(kb, &principal, role)?;
    let action = if role.is_some() { "kb.grant" } else { "kb.revoke" };
    audit(engine.store(), action, Some(kb), json!({ "principal": principal, "role": role, "documents": change.documents.len() }))?;
    match role {
        Some(role) => eprintln!("{principal} is {role} of {kb} ({} inheriting documents updated)", change.documents.len()),
        None => eprintln!("{principal} has no role on {kb} now ({} inheriting documents updated)", change.documents.len()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn kb_roles(ctx: &Ctx, kb: &str) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    if !store.kb_exists(kb)? {
        bail!("knowledge base '{kb}' does not exist");
    }
    for (principal, role) in store.kb_roles(kb)? {
        println!("{principal}\t{role}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn document_acl(ctx: &Ctx, kb: &str, source: &str, acl: &[String], inherit: bool) -> Result<ExitCode> {
    let acl: Vec<Principal> = acl.iter().map(|v| Principal::parse(v).context("in --acl")).collect::<Result<_>>()?;
    let engine = engine(ctx)?;
    let Some(doc) = engine.store().documents(kb)?.into_iter().find(|d| d.source == source) else {
        bail!("no document '{source}' in {kb}; `zhiku kb docs {kb}` lists them");
    };
    let own = if inherit { None } else { Some(acl.as_slice()) };
    let change = engine.set_document_acl(kb, doc.id, own)?.context("the document was deleted meanwhile")?;
    let acl = change.documents.first().map(|d| d.1.clone()).unwrap_or_default();
    audit(engine.store(), "document.acl", Some(kb), json!({ "document": doc.id, "source": source, "acl": acl, "inherited": inherit }))?;
    let shown: Vec<&str> = acl.iter().map(Principal::as_str).collect();
    eprintln!("{source}: readable by {}", if shown.is_empty() { "administrators only".to_string() } else { shown.join(", ") });
    Ok(ExitCode::SUCCESS)
}

pub fn ldap(ctx: &Ctx, cmd: LdapCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    ldap_on(ctx, store.as_ref(), store.as_ref(), cmd)
}

/// `zhiku ldap` over either backend's accounts.
pub fn ldap_on(ctx: &Ctx, accounts: &dyn Accounts, log: &dyn AuditLog, cmd: LdapCommand) -> Result<ExitCode> {
    let LdapCommand::Sync { json } = cmd;
    let directory = &ctx.config.ldap;
    if !directory.enabled() {
        bail!("no directory is configured: set ldap.url, ldap.user_base and the rest (docs/configuration.md)");
    }
    let report = zhiku_server::directory::sync(accounts, directory).map_err(|e| anyhow::anyhow!("{e}"))?;
    audit(log, "ldap.sync", None, json!({ "users": report.users, "created": report.created, "disabled": report.disabled }))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!("{} directory users; created {:?}; disabled {:?}", report.users, report.created, report.disabled);
    }
    Ok(ExitCode::SUCCESS)
}

/// `90d`, `12h`, `30m` as seconds.
pub(crate) fn parse_duration(text: &str) -> Result<i64> {
    let invalid = || anyhow::anyhow!("invalid duration '{text}': use a number with d, h or m, e.g. 90d");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| invalid())?;
    let unit = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return Err(invalid()),
    };
    if n <= 0 {
        return Err(invalid());
    }
    n.checked_mul(unit).ok_or_else(invalid)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn key(ctx: &Ctx, cmd: KeyCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    match cmd {
        KeyCommand::Create { name, user, admin, scopes, expires_in, json } => {
            let user = user.unwrap_or_else(|| name.clone());
            let mut scopes: Vec<Scope> = scopes.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
            if admin {
                scopes.push(Scope::Admin);
            }
            if scopes.is_empty() {
                scopes = vec![Scope::Read, Scope::Write];
            }
            let expires_at = expires_in.as_deref().map(parse_duration).transpose()?.map(|s| unix_now() + s);
            let created = store.create_api_key(&name, &user, &scopes, expires_at)?;
            let info = &created.info;
            audit(
                &store,
                "key.create",
                None,
                json!({ "id": info.id, "name": name, "user": user, "scopes": info.scopes, "expires_at": expires_at }),
            )?;
            if json {
                let out = json!({
                    "id": info.id, "name": name, "user": user, "admin": info.admin, "scopes": info.scopes,
                    "expires_at": expires_at, "key": created.key,
                });
                println!("{out}");
            } else {
                println!("{}", created.key);
                eprintln!("API key '{name}' (id {}) acts as user '{user}'. It is shown only now: store it safely.", info.id);
            }
        }
        KeyCommand::List { json } => {
            let keys = store.list_api_keys()?;
            if json {
                println!("{}", serde_json::to_string(&json!({ "keys": keys }))?);
            } else {
                let now = unix_now();
                for k in keys {
                    let scopes: Vec<&str> = k.scopes.iter().map(|s| s.as_str()).collect();
                    let state = match (k.revoked, k.expires_at) {
                        (true, _) => "revoked",
                        (false, Some(t)) if t <= now => "expired",
                        _ => "active",
                    };
                    println!("{}\t{}\t{}\t{}\t{state}", k.id, k.name, k.user, scopes.join(","));
                }
            }
        }
        KeyCommand::Revoke { id } => {
            if !store.revoke_api_key(&id)? {
                bail!("no active API key with id '{id}'; `zhiku key list` shows them");
            }
            audit(&store, "key.revoke", None, json!({ "id": id }))?;
            eprintln!("API key {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time as Unix milliseconds; a bare date is its first millisecond, or its last with `end_of_day`.
fn parse_time(text: &str, end_of_day: bool) -> Result<i64> {
    let invalid = || anyhow::anyhow!("invalid time '{text}': use YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix seconds");
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds * 1000);
    }
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (text, None),
    };
    let parts: Vec<i64> = date.split('-').map(|p| p.parse().map_err(|_| invalid())).collect::<Result<_>>()?;
    let [y, m, d] = parts[..] else { return Err(invalid()) };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(invalid());
    }
    let day_ms = zhiku_core::calendar::days_from_civil(y, m, d) * 86_400_000;
    match time {
        None if end_of_day => Ok(day_ms + 86_400_000 - 1),
        None => Ok(day_ms),
        Some(t) => {
            let hms: Vec<i64> = t.split(':').map(|p| p.parse().map_err(|_| invalid())).collect::<Result<_>>()?;
            let [h, min, s] = hms[..] else { return Err(invalid()) };
            if h > 23 || min > 59 || s > 60 {
                return Err(invalid());
            }
            Ok(day_ms + (h * 3600 + min * 60 + s) * 1000)
        }
    }
}

pub fn audit_command(ctx: &Ctx, cmd: AuditCommand) -> Result<ExitCode> {
    let store = open_store(ctx)?;
    run_audit_command(cmd, &store, || Ok(store.verify_audit()?), |filter| Ok(store.audit_records(filter)?))
}

/// `zhiku audit` over either backend's chain.
pub fn run_audit_command(
    cmd: AuditCommand,
    log: &dyn AuditLog,
    verify: impl FnOnce() -> Result<std::result::Result<(i64, String), zhiku_store::ChainBreak>>,
    records: impl FnOnce(&AuditFilter) -> Result<Vec<zhiku_store::AuditRecord>>,
) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { json } => match verify()? {
            Ok((entries, head)) => {
                if json {
                    println!("{}", json!({ "ok": true, "entries": entries, "head": head }));
                } else {
                    println!("audit log intact: {entries} entries, latest hash {head}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(broken) => {
                if json {
                    println!("{}", json!({ "ok": false, "seq": broken.seq, "reason": broken.reason }));
                } else {
                    println!("audit log BROKEN at entry {}: {}", broken.seq, broken.reason);
                }
                Ok(ExitCode::FAILURE)
            }
        },
        AuditCommand::Export { since, until, user, output } => {
            let filter = AuditFilter {
                since_ms: since.as_deref().map(|t| parse_time(t, false)).transpose()?,
                until_ms: until.as_deref().map(|t| parse_time(t, true)).transpose()?,
                user: user.clone(),
                latest: None,
            };
            let records = records(&filter)?;
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            for r in &records {
                serde_json::to_writer(&mut out, r)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            audit(log, "audit.export", None, json!({ "since": since, "until": until, "user": user, "entries": records.len() }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations_parse() {
        assert_eq!(parse_time("1970-01-01", false).unwrap(), 0);
        assert_eq!(parse_time("1970-01-01", true).unwrap(), 86_400_000 - 1);
        assert_eq!(parse_time("2026-11-29T12:00:00Z", false).unwrap(), 1_795_953_600_000);
        assert_eq!(parse_time("1795953600", false).unwrap(), 1_795_953_600_000);
        for bad in ["2026-13-01", "yesterday", "2026-11", "2026-11-29T25:00:00Z"] {
            assert!(parse_time(bad, false).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("90d").unwrap(), 90 * 86_400);
        assert_eq!(parse_duration("30m").unwrap(), 1_800);
        for bad in ["", "d", "-1d", "5w", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
