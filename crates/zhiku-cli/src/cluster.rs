//! The commands that run against a shared PostgreSQL database (`--database-url`): ingestion
//! (here or queued), workers, the job list, search and answers, group memberships.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use zhiku_core::{Caller, Embedder, Principal};
use zhiku_rag::cluster::ClusterEngine;
use zhiku_rag::IngestReport;

use crate::cli::{AskArgs, GroupCommand, IngestArgs, JobsArgs, KbCommand, KeyCommand, SearchArgs, ServeArgs, WorkerArgs};
use crate::commands::{configured_chat, parse_acl, print_ingest_report, Ctx};
use crate::governance::audit;

pub(crate) fn connect(ctx: &Ctx, url: &str) -> Result<ClusterEngine> {
    let embedder = default_embedder(ctx)?;
    ClusterEngine::connect(url, embedder, ctx.config.rag()).context("with --database-url / ZHIKU_DATABASE_URL")
}

/// Every knowledge base of a shared database uses the configured default embedding model
/// (`models.default_embedding`): workers on different machines must embed alike.
fn default_embedder(ctx: &Ctx) -> Result<Arc<dyn Embedder>> {
    let name = ctx.config.rag().embedding_model;
    Ok(match name.as_str() {
        zhiku_rag::embedding::MULTILINGUAL_E5 => {
            let path = ctx.config.multilingual_embedding_path(&ctx.data_dir);
            Arc::new(
                zhiku_models::E5Embedder::load(&path)
                    .with_context(|| format!("cannot load {} (`zhiku setup` installs it)", path.display()))?,
            )
        }
        zhiku_rag::embedding::REMOTE => {
            let endpoint = ctx.config.remote_embedding().context("models.default_embedding = \"remote\" needs models.embedding_url")?;
            Arc::new(zhiku_models::RemoteEmbedder::connect(endpoint)?)
        }
        _ => {
            let dir = ctx.config.embedding_dir(&ctx.data_dir);
            Arc::new(
                zhiku_models::BertEmbedder::load(&dir)
                    .with_context(|| format!("cannot load the embedding model from {}", dir.display()))?,
            )
        }
    })
}

fn caller(engine: &ClusterEngine, as_user: Option<&str>) -> Result<Caller> {
    match as_user {
        None => Ok(Caller::Admin),
        Some(name) => engine.caller_for(name).with_context(|| format!("invalid --as user '{name}'")),
    }
}

pub(crate) fn ingest(ctx: &Ctx, url: &str, args: IngestArgs) -> Result<ExitCode> {
    if args.embedding_model.is_some() {
        bail!("--embedding-model: knowledge bases in a shared database all use models.default_embedding");
    }
    let acl = parse_acl(&args.acl)?;
    let engine = connect(ctx, url)?;
    let given = (!acl.is_empty()).then_some(acl.as_slice());
    if args.queue {
        let (ids, report) = engine.enqueue(&args.kb, &args.paths, given, args.max_attempts)?;
        for f in &report.files {
            if let zhiku_rag::FileOutcome::Failed { reason } = &f.outcome {
                eprintln!("failed: {}: {reason}", f.source);
            }
        }
        if args.json {
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            println!(
                "{}",
                serde_json::to_string(
                    &json!({ "kb": args.kb, "queued": ids.len(), "jobs": ids, "failed": report.failed(), "files": report.files })
                )?
            );
        } else {
            eprintln!("{}: {} jobs queued, {} files failed", args.kb, ids.len(), report.failed());
        }
        let detail = json!({ "queued": ids.len(), "failed": report.failed() });
        audit(&engine, "ingest.queue", Some(&args.kb), detail)?;
        return Ok(if report.failed() > 0 { ExitCode::from(crate::commands::EXIT_PARTIAL) } else { ExitCode::SUCCESS });
    }
    let report: IngestReport = engine.ingest(&args.kb, &args.paths, given, args.sync)?;
    audit(&engine, "ingest", Some(&args.kb), zhiku_rag::audit::ingest_detail(&report))?;
    print_ingest_report(&args.kb, &report, args.json)
}

/// Set by SIGTERM/SIGINT: the worker finishes its job and exits.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub(crate) fn worker(ctx: &Ctx, url: &str, args: WorkerArgs) -> Result<ExitCode> {
    if !(args.lease_seconds.is_finite() && args.lease_seconds >= 1.0) {
        bail!("--lease-seconds must be at least 1");
    }
    let engine = connect(ctx, url)?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, request_stop as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, request_stop as *const () as libc::sighandler_t);
    }
    let worker = engine.worker(Duration::from_secs_f64(args.lease_seconds));
    eprintln!("worker {} started", worker.name());
    let json = args.json;
    let summary = worker.run(args.until_idle, Duration::from_millis(args.poll_ms.max(10)), &STOP, &mut |job, status| {
        if json {
            println!("{}", json!({ "job": job.id.to_string(), "status": status, "attempt": job.attempt }));
            let _ = std::io::stdout().flush();
        } else {
            eprintln!("job {} ({}): {status}", job.id, job.kb);
        }
    })?;
    if json {
        println!("{}", json!({ "worker": worker.name(), "summary": summary }));
    } else {
        eprintln!("worker {}: {} done, {} failed, {} back in the queue", worker.name(), summary.done, summary.failed, summary.retried);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn jobs(ctx: &Ctx, url: &str, args: JobsArgs) -> Result<ExitCode> {
    let engine = connect(ctx, url)?;
    let status = args.status.as_deref().and_then(zhiku_pg::JobStatus::parse);
    let jobs = engine.jobs(status, args.limit)?;
    if args.json {
        println!("{}", serde_json::to_string(&json!({ "jobs": jobs }))?);
        return Ok(ExitCode::SUCCESS);
    }
    for j in &jobs {
        let source = j.payload.get("source").and_then(|s| s.as_str()).unwrap_or("");
        let status = j.status.as_str();
        let note = j.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
        println!("{}\t{status}\t{}\t{source}\tattempts {}/{}{note}", j.id, j.kb, j.attempts, j.max_attempts);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn search(ctx: &Ctx, url: &str, args: SearchArgs) -> Result<ExitCode> {
    if args.retrieval.is_some_and(|m| m != zhiku_rag::RetrievalMode::Hybrid) {
        bail!("--retrieval: a shared database searches in hybrid mode only (the knowledge graph is embedded-only so far)");
    }
    let engine = connect(ctx, url)?;
    let caller = caller(&engine, args.as_user.as_deref())?;
    let hits = engine.search(&args.kb, &args.query, &caller, args.top_k)?;
    let actor = crate::commands::question_actor(args.as_user.as_deref());
    zhiku_rag::audit::record_question(&engine, &actor, "search", &args.kb, &args.query, &zhiku_rag::audit::hit_refs(&hits), None)?;
    crate::commands::print_hits(&hits, args.json)
}

pub(crate) fn ask(ctx: &Ctx, url: &str, args: AskArgs) -> Result<ExitCode> {
    if args.adapter.as_deref().is_some_and(|a| a != "none") {
        bail!("--adapter is not available with --database-url yet");
    }
    let engine = connect(ctx, url)?;
    let caller = caller(&engine, args.as_user.as_deref())?;
    let llm = configured_chat(ctx)?;
    let stream = !args.json;
    let answer = engine.ask_with(&args.kb, &args.question, &caller, llm.as_ref(), &engine.config().generation, &mut |piece| {
        if stream {
            print!("{piece}");
            let _ = std::io::stdout().flush();
        }
        true
    })?;
    let actor = crate::commands::question_actor(args.as_user.as_deref());
    let cited: Vec<(&str, &str)> = answer.citations.iter().map(|c| (c.source.as_str(), c.chunk_id.as_str())).collect();
    zhiku_rag::audit::record_question(&engine, &actor, "ask", &args.kb, &args.question, &cited, Some(&answer.answer))?;
    crate::commands::print_answer(&answer, args.json)
}

pub(crate) fn group(ctx: &Ctx, url: &str, cmd: GroupCommand) -> Result<ExitCode> {
    let engine = connect(ctx, url)?;
    match cmd {
        GroupCommand::AddMember { group, members } => {
            Principal::group(&group).context("invalid group name")?;
            for m in &members {
                engine.add_member(&group, &crate::governance::member(m)?)?;
            }
            audit(&engine, "group.add", None, json!({ "group": group, "members": members }))?;
        }
        GroupCommand::RemoveMember { group, members } => {
            for m in &members {
                if !engine.remove_member(&group, &crate::governance::member(m)?)? {
                    eprintln!("note: {m} was not in {group}");
                }
            }
            audit(&engine, "group.remove", None, json!({ "group": group, "members": members }))?;
        }
        GroupCommand::List => {
            for (group, member) in engine.memberships()? {
                println!("group:{group}\t{member}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn kb(ctx: &Ctx, url: &str, cmd: KbCommand) -> Result<ExitCode> {
    let engine = connect(ctx, url)?;
    match cmd {
        KbCommand::List => {
            for name in engine.kb_names()? {
                println!("{name}");
            }
        }
        KbCommand::Docs { name } => {
            for d in engine.documents(&name)? {
                let acl: Vec<&str> = d.acl.iter().map(|p| p.as_str()).collect();
                println!("{}\t{} chunks\t{}\t{}", d.source, d.chunks, d.language, acl.join(","));
            }
        }
        KbCommand::Create {
            name,
            acl,
            log_questions,
            mask_answers,
            answer_cache,
            pii,
            duplicates,
            vector_index,
            embedding_model,
            adapter,
            model,
        } => {
            let settings = [
                log_questions.is_some(),
                mask_answers.is_some(),
                answer_cache.is_some(),
                pii.is_some(),
                duplicates.is_some(),
                vector_index.is_some(),
                embedding_model.is_some(),
                adapter.is_some(),
                model.is_some(),
            ];
            if settings.contains(&true) {
                bail!("with --database-url, `kb create` sets the viewers (--acl) only so far");
            }
            let viewers = parse_acl(&acl)?;
            let changed = engine.create_kb(&name, (!acl.is_empty()).then_some(viewers.as_slice()))?;
            audit(&engine, "kb.create", Some(&name), json!({ "viewers": acl, "documents_changed": changed }))?;
            eprintln!("{name}: ready ({changed} documents now readable by the new viewers)");
        }
        KbCommand::Acl { name, source, acl, inherit } => {
            let acl = parse_acl(&acl)?;
            let given = (!inherit).then_some(acl.as_slice());
            if !engine.set_document_acl(&name, &source, given)? {
                bail!("no document '{source}' in knowledge base '{name}' (see `kb docs {name}`)");
            }
            audit(
                &engine,
                "document.acl",
                Some(&name),
                json!({ "source": source, "acl": given.map(|a| a.iter().map(|p| p.as_str()).collect::<Vec<_>>()) }),
            )?;
        }
        KbCommand::Grant { name, principal, role } => {
            let principal = Principal::parse(&principal)?;
            let changed = engine.set_kb_role(&name, &principal, Some(role))?;
            audit(&engine, "kb.grant", Some(&name), json!({ "principal": principal, "role": role, "documents": changed }))?;
            eprintln!("{principal} is {role} of {name} ({changed} inheriting documents updated)");
        }
        KbCommand::Revoke { name, principal } => {
            let principal = Principal::parse(&principal)?;
            let changed = engine.set_kb_role(&name, &principal, None)?;
            audit(&engine, "kb.revoke", Some(&name), json!({ "principal": principal, "documents": changed }))?;
            eprintln!("{principal} has no role on {name} now ({changed} inheriting documents updated)");
        }
        KbCommand::Roles { name } => {
            for (principal, role) in engine.kb_roles(&name)? {
                println!("{principal}\t{role}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn migrate(ctx: &Ctx, to: &str, json: bool) -> Result<ExitCode> {
    let store = crate::commands::open_store(ctx)?;
    let engine = connect(ctx, to)?;
    let bar = indicatif::ProgressBar::new(0);
    let report = engine.migrate_from(&store, &mut |kb, done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(kb.to_string());
    })?;
    bar.finish_and_clear();
    let detail = json!({ "to": zhiku_pg::redact(to), "kbs": report.kbs.len(), "audit_entries": report.audit_entries });
    crate::governance::audit(&store, "migrate", None, detail.clone())?;
    // The chain goes on in the shared database, which records the move as well.
    audit(&engine, "migrate", None, detail)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for kb in &report.kbs {
            eprintln!(
                "{}: {} documents verified ({} copied, {} already there, {} chunks), {} skipped",
                kb.name,
                kb.documents,
                kb.copied,
                kb.unchanged,
                kb.chunks,
                kb.skipped.len()
            );
        }
        for refused in &report.refused {
            eprintln!("{}: not copied: {}", refused.name, refused.reason);
        }
        eprintln!(
            "{} accounts, {} group memberships, {} stored exchanges and {} audit entries copied",
            report.accounts, report.memberships, report.exchanges, report.audit_entries
        );
        if let Some(note) = &report.audit_note {
            eprintln!("audit log: {note}");
        }
    }
    Ok(if report.refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(crate::commands::EXIT_PARTIAL) })
}

/// `zhiku audit` over the shared database's chain.
pub(crate) fn audit_command(ctx: &Ctx, url: &str, cmd: crate::cli::AuditCommand) -> Result<ExitCode> {
    let engine = connect(ctx, url)?;
    crate::governance::run_audit_command(cmd, &engine, || Ok(engine.verify_audit()?), |filter| Ok(engine.audit_records(filter)?))
}

/// A stateless server replica: any number of them over one database answer alike.
pub(crate) fn serve(ctx: &Ctx, url: &str, args: ServeArgs) -> Result<ExitCode> {
    let cluster = Arc::new(connect(ctx, url)?);
    crate::commands::serve(ctx, args, Some(cluster))
}

/// API keys in the shared database, valid on every replica.
pub(crate) fn key(ctx: &Ctx, url: &str, cmd: KeyCommand) -> Result<ExitCode> {
    let engine = connect(ctx, url)?;
    match cmd {
        KeyCommand::Create { name, user, admin, scopes, expires_in, json } => {
            let user = user.unwrap_or_else(|| name.clone());
            let mut scopes: Vec<String> = scopes;
            for s in &scopes {
                if !["read", "write", "admin"].contains(&s.as_str()) {
                    bail!("--scope {s}: use read, write or admin");
                }
            }
            if admin {
                scopes.push("admin".into());
            }
            if scopes.is_empty() {
                scopes = vec!["read".into(), "write".into()];
            }
            let expires = expires_in.as_deref().map(crate::governance::parse_duration).transpose()?;
            let refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let (id, key) = engine.create_api_key(&name, &user, &refs, expires)?;
            audit(
                &engine,
                "key.create",
                None,
                json!({ "id": id, "name": name, "user": user, "scopes": scopes, "expires_in": expires_in }),
            )?;
            if json {
                println!(
                    "{}",
                    json!({ "id": id, "name": name, "user": user, "admin": refs.contains(&"admin"), "scopes": scopes, "key": key })
                );
            } else {
                println!("{key}");
            }
        }
        KeyCommand::Revoke { id } => {
            if !engine.revoke_api_key(&id)? {
                bail!("no live key with id '{id}'");
            }
            audit(&engine, "key.revoke", None, json!({ "id": id }))?;
        }
        KeyCommand::List { .. } => bail!("key list is not available with --database-url yet"),
    }
    Ok(ExitCode::SUCCESS)
}
