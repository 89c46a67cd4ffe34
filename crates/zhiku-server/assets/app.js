// zhiku's web app: plain JavaScript, no external scripts or fonts. Talks to the same API as
// any client (OpenAI-compatible chat with SSE streaming, /api/search, /api/kbs), with the
// user's API key held for the browser session only, or a session cookie after a password
// log-in (its CSRF token sent with every request).
"use strict";

const STRINGS = {
  en: {
    "tab.chat": "Chat", "tab.search": "Search", "tab.documents": "Documents", "tab.admin": "Admin", logout: "Sign out",
    "tab.review": "Review", "review.show": "Show", "review.pending": "Pending", "review.accepted": "Accepted", "review.rejected": "Rejected",
    "review.all": "All", "review.question": "Question", "review.answer": "Answer", "review.accept": "Accept", "review.reject": "Reject",
    "review.count": "{n} pairs", "review.none": "No pairs here.", "review.editors": "Only editors of this knowledge base review its pairs.",
    "review.saved": "Pair #{id}: {status}.", "review.edited": "edited",
    "review.hint": "Question/answer pairs a model wrote from your documents (zhiku finetune dataset). Accept, correct or reject them before they train a model.",
    "tab.graph": "Graph", "graph.entity": "Entity", "graph.placeholder": "An entity: a system, a team, a person…", "graph.show": "Show",
    "graph.none": "No entity “{name}” in the documents you may read.", "graph.found": "{name} ({kind}): {n} relations",
    "graph.in": "{other} {relation} {name}", "graph.out": "{name} {relation} {other}", "graph.also": "Also called: {names}",
    "search.mode": "Retrieval", "search.hybrid": "Hybrid", "search.graph": "Hybrid + graph", "search.global": "Hybrid + communities",
    "chat.history": "Earlier conversations", "rate.up": "Helpful", "rate.down": "Not helpful",
    "rate.correction": "What should the answer have said? (optional)", "rate.send": "Send feedback", "rate.thanks": "Thank you for the feedback.",
    "docs.newkb": "New knowledge base", "docs.acl": "Readers (e.g. group:staff)", "docs.create": "Create",
    "docs.drop": "Drop files here, or choose them", "docs.name": "Document", "docs.chunks": "Chunks", "docs.language": "Language",
    "docs.delete": "Delete", "docs.uploading": "Uploading {n} files…", "docs.progress": "Ingesting: {done} of {total} files",
    "docs.done": "Done: {ingested} ingested, {failed} failed", "docs.failed": "Ingestion failed: ", "docs.confirm": "Delete {name}?",
    "login.title": "Sign in", "login.key": "API key", "login.hint": "Ask your administrator for a key (zhiku key create).",
    "login.submit": "Sign in", "login.bad": "This key was not accepted.", "login.down": "The server cannot be reached.",
    kb: "Knowledge base", "chat.clear": "New conversation", "chat.question": "Question",
    "chat.placeholder": "Ask a question about your documents… (Enter sends, Shift+Enter for a new line)", "chat.send": "Send",
    "chat.sources": "Sources:", "chat.failed": "The answer failed: ", "chat.nokb": "No knowledge base is available to you.",
    "search.query": "Query", "search.placeholder": "Search…", "search.submit": "Search",
    "search.none": "No results.", "search.count": "{n} results", page: "page {n}", close: "Close",
    "admin.kbs": "Knowledge bases", "admin.models": "Models", "admin.keys": "API keys", "admin.keyname": "Name",
    "admin.keyuser": "Acts as user", "admin.keyadmin": "Administrator", "admin.keycreate": "Create key", "admin.keystate": "State",
    "admin.revoke": "Revoke", "admin.active": "active", "admin.revoked": "revoked", "admin.jobs": "Ingestion jobs", "admin.files": "Files",
    "admin.newkey": "New key (shown only now, copy it): ", "passage.gone": "This passage is no longer available to you.",
    "login.user": "User name", "login.password": "Password", "login.or": "Or sign in with an API key:",
    "login.badpassword": "Wrong user name or password.", "login.locked": "Too many failed attempts; try again in {n} seconds.",
    "roles.title": "Who may use this knowledge base", "roles.principal": "User or group", "roles.role": "Role", "roles.grant": "Grant",
    "roles.remove": "Remove", "admin.users": "Users", "admin.usercreate": "Create user", "admin.groups": "Groups",
    "admin.audit": "Audit log", "admin.when": "When", "admin.who": "Who", "admin.what": "What",
    "admin.chainok": "Hash chain intact: {n} entries.", "admin.chainbroken": "Hash chain BROKEN at entry {seq}: {reason}",
    "admin.disabled": "disabled", "admin.haspassword": "password", "admin.group": "Group",
    "admin.member": "Member (user:alice, group:backend)", "admin.addmember": "Add to group", "admin.disable": "Disable",
    "admin.enable": "Enable", "admin.deleteuser": "Delete", "admin.confirmuser": "Delete the account {name}? Its keys are revoked.",
  },
  zh: {
    "tab.chat": "问答", "tab.search": "搜索", "tab.documents": "文档", "tab.admin": "管理", logout: "退出",
    "tab.review": "审核", "review.show": "显示", "review.pending": "待审核", "review.accepted": "已采纳", "review.rejected": "已拒绝",
    "review.all": "全部", "review.question": "问题", "review.answer": "答案", "review.accept": "采纳", "review.reject": "拒绝",
    "review.count": "{n} 条", "review.none": "这里没有问答对。", "review.editors": "只有该知识库的编辑者可以审核其问答对。",
    "review.saved": "问答对 #{id}：{status}。", "review.edited": "已修改",
    "review.hint": "模型根据您的文档写出的问答对（zhiku finetune dataset）。在用于训练模型之前，请采纳、修改或拒绝。",
    "tab.graph": "图谱", "graph.entity": "实体", "graph.placeholder": "一个实体：系统、团队、人员……", "graph.show": "查看",
    "graph.none": "在您可读的文档中没有实体“{name}”。", "graph.found": "{name}（{kind}）：{n} 条关系",
    "graph.in": "{other} {relation} {name}", "graph.out": "{name} {relation} {other}", "graph.also": "别名：{names}",
    "search.mode": "检索方式", "search.hybrid": "混合检索", "search.graph": "混合 + 图谱", "search.global": "混合 + 社区",
    "chat.history": "历史对话", "rate.up": "有帮助", "rate.down": "没帮助",
    "rate.correction": "正确的回答应该是什么？（可选）", "rate.send": "提交反馈", "rate.thanks": "感谢您的反馈。",
    "docs.newkb": "新建知识库", "docs.acl": "读者（如 group:staff）", "docs.create": "创建",
    "docs.drop": "将文件拖到这里，或点击选择", "docs.name": "文档", "docs.chunks": "片段", "docs.language": "语言",
    "docs.delete": "删除", "docs.uploading": "正在上传 {n} 个文件……", "docs.progress": "正在导入：{done} / {total} 个文件",
    "docs.done": "完成：导入 {ingested} 个，失败 {failed} 个", "docs.failed": "导入失败：", "docs.confirm": "删除 {name}？",
    "login.title": "登录", "login.key": "API 密钥", "login.hint": "请向管理员申请密钥（zhiku key create）。",
    "login.submit": "登录", "login.bad": "密钥无效。", "login.down": "无法连接服务器。",
    kb: "知识库", "chat.clear": "新对话", "chat.question": "问题",
    "chat.placeholder": "就您的文档提问……（Enter 发送，Shift+Enter 换行）", "chat.send": "发送",
    "chat.sources": "来源：", "chat.failed": "回答失败：", "chat.nokb": "您没有可用的知识库。",
    "search.query": "查询", "search.placeholder": "搜索……", "search.submit": "搜索",
    "search.none": "没有结果。", "search.count": "{n} 条结果", page: "第 {n} 页", close: "关闭",
    "admin.kbs": "知识库", "admin.models": "模型", "admin.keys": "API 密钥", "admin.keyname": "名称",
    "admin.keyuser": "代表用户", "admin.keyadmin": "管理员", "admin.keycreate": "创建密钥", "admin.keystate": "状态",
    "admin.revoke": "吊销", "admin.active": "有效", "admin.revoked": "已吊销", "admin.jobs": "导入任务", "admin.files": "文件",
    "login.user": "用户名", "login.password": "密码", "login.or": "或使用 API 密钥登录：",
    "login.badpassword": "用户名或密码错误。", "login.locked": "失败次数过多，请 {n} 秒后再试。",
    "roles.title": "谁可以使用这个知识库", "roles.principal": "用户或用户组", "roles.role": "角色", "roles.grant": "授权",
    "roles.remove": "移除", "admin.users": "用户", "admin.usercreate": "创建用户", "admin.groups": "用户组",
    "admin.audit": "审计日志", "admin.when": "时间", "admin.who": "操作者", "admin.what": "操作",
    "admin.chainok": "哈希链完整：共 {n} 条。", "admin.chainbroken": "哈希链在第 {seq} 条处断裂：{reason}",
    "admin.disabled": "已停用", "admin.haspassword": "已设密码", "admin.group": "用户组",
    "admin.member": "成员（user:alice、group:backend）", "admin.addmember": "加入用户组", "admin.disable": "停用",
    "admin.enable": "启用", "admin.deleteuser": "删除", "admin.confirmuser": "删除账号 {name}？其密钥将被吊销。",
    "admin.newkey": "新密钥（仅显示这一次，请复制）：", "passage.gone": "您已无法查看这段内容。",
  },
};

let lang = localStorage.getItem("zhiku.lang") || ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en");
const t = (key, vars = {}) => (STRINGS[lang][key] || STRINGS.en[key] || key).replace(/\{(\w+)\}/g, (_, k) => vars[k]);
const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("zhiku.key") || "";
// A password log-in's CSRF token; the session itself is an HttpOnly cookie scripts cannot read.
let csrf = sessionStorage.getItem("zhiku.csrf") || "";
let isAdmin = false;
// The caller's role per knowledge base (viewer, editor, admin).
let kbRoles = {};
let conversation = [];
// The stored conversation the next answers belong to; a new one per "New conversation".
let conversationId = newConversationId();

function newConversationId() {
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => { el.placeholder = t(el.dataset.i18nPlaceholder); });
  $("lang").textContent = lang === "zh" ? "English" : "中文";
}

function authHeaders() {
  if (apiKey) return { Authorization: `Bearer ${apiKey}` };
  // Behind a single-sign-on proxy the proxy names the user; changes show they come from this page.
  return csrf ? { "X-CSRF-Token": csrf } : { "X-Requested-With": "zhiku" };
}

async function api(path, options = {}) {
  const headers = Object.assign(authHeaders(), options.body ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) { signOut(); throw new Error(t("login.bad")); }
  return response;
}

async function errorText(response) {
  try { return (await response.json()).error.message; } catch { return `HTTP ${response.status}`; }
}

function show(view) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== view; });
  document.querySelectorAll("#tabs button").forEach((b) => {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  });
  if (view === "admin") loadAdmin();
  if (view === "documents") loadDocuments();
  if (view === "review") loadPairs();
  const focus = { chat: "question", search: "query", graph: "entity", login: "user" }[view];
  if (focus) $(focus).focus();
}

function signOut() {
  if (!apiKey && csrf) fetch("/api/logout", { method: "POST", headers: authHeaders() }).catch(() => {});
  apiKey = "";
  csrf = "";
  sessionStorage.removeItem("zhiku.key");
  sessionStorage.removeItem("zhiku.csrf");
  $("drop").hidden = true;
  $("kb-roles").hidden = true;
  $("tabs").hidden = true;
  $("logout").hidden = true;
  show("login");
}

async function signIn(key) {
  apiKey = key;
  await enter(t("login.bad"));
  sessionStorage.setItem("zhiku.key", key);
}

async function signInWithPassword(user, password) {
  let response;
  try {
    response = await fetch("/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ user, password }) });
  } catch { throw new Error(t("login.down")); }
  if (response.status === 429) throw new Error(t("login.locked", { n: response.headers.get("Retry-After") || "60" }));
  if (!response.ok) throw new Error(t("login.badpassword"));
  apiKey = "";
  csrf = (await response.json()).csrf_token;
  sessionStorage.setItem("zhiku.csrf", csrf);
  await enter(t("login.badpassword"));
}

// Opens the app with the credentials now held (a key or a session).
async function enter(refused) {
  let response;
  try { response = await fetch("/v1/models", { headers: authHeaders() }); } catch { throw new Error(t("login.down")); }
  if (!response.ok) throw new Error(refused);
  isAdmin = (await (await api("/api/me")).json()).admin;
  kbRoles = Object.fromEntries((await (await api("/api/kbs")).json()).kbs.map((k) => [k.name, k.role]));
  document.querySelectorAll(".admin-only").forEach((el) => { el.hidden = !isAdmin; });
  await refreshKbs((await response.json()).data.map((m) => m.id));
  $("tabs").hidden = false;
  $("logout").hidden = false;
  loadHistory();
  show("chat");
}

// Fills every knowledge-base menu, keeping each one's choice (or selecting `choose`).
async function refreshKbs(models, choose) {
  if (!models) models = (await (await api("/v1/models")).json()).data.map((m) => m.id);
  const kbs = models.filter((id) => id.startsWith("kb/")).map((id) => id.slice(3));
  document.querySelectorAll(".kb-select").forEach((select) => {
    const keep = choose || select.value;
    select.replaceChildren(...kbs.map((kb) => new Option(kb, kb)));
    if (kbs.includes(keep)) select.value = keep;
  });
}

// The caller's role on a knowledge base; an administrator holds every role everywhere.
function roleOn(kb) {
  return isAdmin ? "admin" : kbRoles[kb];
}

async function loadDocuments() {
  const kb = $("docs-kb").value;
  const body = $("docs").tBodies[0];
  const editor = ["editor", "admin"].includes(roleOn(kb));
  $("drop").hidden = !kb || !editor;
  $("kb-roles").hidden = !kb || roleOn(kb) !== "admin";
  if (!kb) { body.replaceChildren(); return; }
  if (roleOn(kb) === "admin") loadRoles();
  const response = await api(`/api/kbs/${encodeURIComponent(kb)}/documents`);
  if (!response.ok) { body.replaceChildren(); return; }
  const docs = (await response.json()).documents;
  body.replaceChildren(...docs.map((d) => {
    const name = d.source.split("/").pop();
    const actions = element("td");
    if (editor) {
      const del = element("button", { type: "button", "aria-label": `${t("docs.delete")} ${name}` }, t("docs.delete"));
      del.addEventListener("click", async () => {
        if (!confirm(t("docs.confirm", { name }))) return;
        await api(`/api/kbs/${encodeURIComponent(kb)}/documents/${d.id}`, { method: "DELETE" });
        loadDocuments();
      });
      actions.append(del);
    }
    return element("tr", {}, element("td", {}, name), element("td", {}, String(d.chunks)), element("td", {}, d.language), actions);
  }));
}

async function loadRoles() {
  const kb = $("docs-kb").value;
  const response = await api(`/api/kbs/${encodeURIComponent(kb)}/roles`);
  if (!response.ok) return;
  const { roles } = await response.json();
  $("roles").tBodies[0].replaceChildren(...roles.map((r) => {
    const remove = element("button", { type: "button", "aria-label": `${t("roles.remove")} ${r.principal}` }, t("roles.remove"));
    remove.addEventListener("click", async () => {
      await api(`/api/kbs/${encodeURIComponent(kb)}/roles`, { method: "PUT", body: JSON.stringify({ principal: r.principal, role: null }) });
      loadRoles();
    });
    return element("tr", {}, element("td", {}, r.principal), element("td", {}, r.role), element("td", {}, remove));
  }));
}

// Reads an SSE response, calling `onEvent` with each event's parsed data.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffered.indexOf("\n\n")) >= 0) {
      const event = buffered.slice(0, cut);
      buffered = buffered.slice(cut + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data && data !== "[DONE]") onEvent(JSON.parse(data));
    }
  }
}

async function uploadFiles(files) {
  const kb = $("docs-kb").value;
  if (!kb || !files.length) return;
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  const bar = $("upload-progress");
  const status = $("upload-status");
  bar.hidden = false;
  bar.value = 0;
  status.textContent = t("docs.uploading", { n: files.length });
  const response = await fetch(`/api/kbs/${encodeURIComponent(kb)}/documents`, { method: "POST", body: form, headers: authHeaders() });
  if (!response.ok) { status.textContent = t("docs.failed") + await errorText(response); return; }
  const { job } = await response.json();
  const events = await api(`/api/jobs/${job.id}/events`);
  let last = job;
  await readEvents(events, ({ job: s }) => {
    last = s;
    bar.max = Math.max(s.files_total, 1);
    bar.value = s.files_done;
    status.textContent = t("docs.progress", { done: s.files_done, total: s.files_total });
  });
  if (last.state === "failed") {
    status.textContent = t("docs.failed") + last.error;
  } else {
    const failed = last.files.filter((f) => f.status === "failed").length;
    status.textContent = t("docs.done", { ingested: last.files.length - failed, failed });
  }
  loadDocuments();
}

function element(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === "class") el.className = v; else el.setAttribute(k, v); }
  el.append(...children);
  return el;
}

// The review queue: each pair with its question and answer editable; accepting sends the text
// as shown (a correction when it was changed), rejecting drops it from every dataset.
// Only the latest load renders: opening the tab and choosing a knowledge base both load, and an
// earlier, slower answer must not replace the list (and what the reviewer typed into it).
let pairsLoads = 0;
async function loadPairs() {
  const load = ++pairsLoads;
  const kb = $("review-kb").value;
  const list = $("pairs");
  if (!kb) { list.replaceChildren(); return; }
  if (!["editor", "admin"].includes(roleOn(kb))) { list.replaceChildren(); $("review-result").textContent = t("review.editors"); return; }
  const status = $("review-status").value;
  const response = await api(`/api/kbs/${encodeURIComponent(kb)}/finetune/pairs${status ? `?status=${status}` : ""}`);
  if (load !== pairsLoads) return;
  if (!response.ok) { list.replaceChildren(); $("review-result").textContent = await errorText(response); return; }
  const pairs = (await response.json()).pairs;
  if (load !== pairsLoads) return;
  $("review-result").textContent = pairs.length ? t("review.count", { n: pairs.length }) : t("review.none");
  list.replaceChildren(...pairs.map((pair) => {
    const question = element("textarea", { rows: "2", "aria-label": `${t("review.question")} #${pair.id}` });
    question.value = pair.question;
    const answer = element("textarea", { rows: "3", "aria-label": `${t("review.answer")} #${pair.id}` });
    answer.value = pair.answer;
    const decide = async (decision) => {
      const body = { status: decision };
      if (question.value.trim() !== pair.question) body.question = question.value;
      if (answer.value.trim() !== pair.answer) body.answer = answer.value;
      const reply = await api(`/api/kbs/${encodeURIComponent(kb)}/finetune/pairs/${pair.id}`, { method: "POST", body: JSON.stringify(body) });
      if (!reply.ok) { $("review-result").textContent = await errorText(reply); return; }
      await loadPairs();
      $("review-result").textContent = t("review.saved", { id: pair.id, status: t(`review.${decision}`) });
    };
    const accept = element("button", { type: "button", class: "accept" }, t("review.accept"));
    accept.addEventListener("click", () => decide("accepted"));
    const reject = element("button", { type: "button", class: "reject" }, t("review.reject"));
    reject.addEventListener("click", () => decide("rejected"));
    const where = `${pair.source.split("/").pop()} · ${t(`review.${pair.status}`)}${pair.edited ? ` · ${t("review.edited")}` : ""}`;
    return element("li", { "data-pair": String(pair.id) },
      element("p", { class: "where" }, where),
      element("label", {}, t("review.question"), question),
      element("label", {}, t("review.answer"), answer),
      element("div", { class: "row" }, accept, reject));
  }));
}

function citationButton(n, citation, kb) {
  const button = element("button", { type: "button", class: "cite", "aria-label": `[${n}] ${citation ? citation.source : ""}` }, `[${n}]`);
  button.addEventListener("click", () => openPassage(kb, citation));
  return button;
}

// The answer's text with each [n] that names a source turned into a button opening it.
function renderAnswer(li, text, citations, kb) {
  const byN = new Map(citations.map((c) => [c.n, c]));
  const parts = text.split(/(\[\d+\])/);
  li.replaceChildren(...parts.map((part) => {
    const m = part.match(/^\[(\d+)\]$/);
    return m && byN.has(Number(m[1])) ? citationButton(m[1], byN.get(Number(m[1])), kb) : document.createTextNode(part);
  }));
  if (citations.length) {
    const list = element("div", { class: "sources" }, t("chat.sources"));
    citations.forEach((c) => {
      const b = citationButton(c.n, c, kb);
      b.textContent = `[${c.n}] ${c.source.split("/").pop()}`;
      list.append(b);
    });
    li.append(list);
  }
}

// Thumbs up or down for a stored answer; down asks for an optional correction.
function ratingControls(completionId) {
  const box = element("div", { class: "rate" });
  const send = async (rating, correction) => {
    const response = await api("/api/feedback", { method: "POST", body: JSON.stringify({ completion_id: completionId, rating, correction }) });
    box.replaceChildren(response.ok ? t("rate.thanks") : await errorText(response));
  };
  const up = element("button", { type: "button" }, "👍 " + t("rate.up"));
  const down = element("button", { type: "button" }, "👎 " + t("rate.down"));
  up.addEventListener("click", () => send("up"));
  down.addEventListener("click", () => {
    const text = element("textarea", { rows: "2", "aria-label": t("rate.correction"), placeholder: t("rate.correction") });
    const submit = element("button", { type: "button" }, t("rate.send"));
    submit.addEventListener("click", () => send("down", text.value));
    box.replaceChildren(text, submit);
    text.focus();
  });
  box.append(up, down);
  return box;
}

async function loadHistory() {
  const response = await api("/api/conversations");
  if (!response.ok) return;
  const list = (await response.json()).conversations;
  $("history").replaceChildren(new Option("", ""), ...list.map((c) => new Option(`${c.title.slice(0, 60)} (${c.kb || ""})`, c.id)));
}

async function showConversation(id) {
  const response = await api(`/api/conversations/${encodeURIComponent(id)}`);
  if (!response.ok) return;
  const { exchanges } = await response.json();
  conversationId = id;
  conversation = [];
  $("messages").replaceChildren();
  for (const e of exchanges) {
    conversation.push({ role: "user", content: e.question }, { role: "assistant", content: e.answer });
    const li = element("li", { class: "assistant" });
    renderAnswer(li, e.answer, e.citations || [], e.kb);
    $("messages").append(element("li", { class: "user" }, e.question), li);
  }
}

async function openPassage(kb, citation) {
  const dialog = $("passage");
  $("passage-title").textContent = citation.source;
  const response = await api(`/api/kbs/${encodeURIComponent(kb)}/chunks/${encodeURIComponent(citation.chunk_id)}`);
  if (response.ok) {
    const chunk = await response.json();
    const where = [chunk.heading_path.join(" › "), chunk.page ? t("page", { n: chunk.page }) : ""].filter(Boolean).join(" — ");
    $("passage-where").textContent = where;
    $("passage-text").textContent = chunk.text;
  } else {
    $("passage-where").textContent = "";
    $("passage-text").textContent = t("passage.gone");
  }
  dialog.showModal();
}

async function ask(question) {
  const kb = $("chat-kb").value;
  if (!kb) { $("messages").append(element("li", { class: "assistant" }, t("chat.nokb"))); return; }
  conversation.push({ role: "user", content: question });
  $("messages").append(element("li", { class: "user" }, question));
  const li = element("li", { class: "assistant pending" });
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
  let text = "";
  let citations = [];
  let completionId = null;
  try {
    const body = { model: `kb/${kb}`, stream: true, messages: conversation, store: true, conversation: conversationId };
    const response = await api("/v1/chat/completions", { method: "POST", body: JSON.stringify(body) });
    if (!response.ok) throw new Error(await errorText(response));
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) { text += delta.content; li.textContent = text; }
      if (chunk.citations) citations = chunk.citations;
      if (chunk.id) completionId = chunk.id;
    });
    conversation.push({ role: "assistant", content: text });
    renderAnswer(li, text.trim(), citations, kb);
    if (completionId) li.append(ratingControls(completionId));
    loadHistory();
  } catch (e) {
    li.textContent = t("chat.failed") + e.message;
    li.classList.add("error");
  } finally {
    li.classList.remove("pending");
  }
}

async function search(kb, query) {
  $("search-status").textContent = "…";
  const retrieval = $("search-mode").value;
  const response = await api("/api/search", { method: "POST", body: JSON.stringify({ kb, query, top_k: 10, retrieval }) });
  if (!response.ok) { $("search-status").textContent = await errorText(response); $("hits").replaceChildren(); return; }
  const hits = (await response.json()).hits;
  $("search-status").textContent = hits.length ? t("search.count", { n: hits.length }) : t("search.none");
  $("hits").replaceChildren(...hits.map((h) => {
    const where = [h.heading_path.join(" › "), h.page ? t("page", { n: h.page }) : ""].filter(Boolean).join(" — ");
    return element("li", {}, element("strong", {}, h.source), element("div", { class: "where" }, where), element("p", {}, h.text));
  }));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// An entity and its neighbours: a star drawn in SVG (neighbours on a circle, each edge labelled
// with its relation and pointing the way it reads), and the same as a list with the sources.
async function showEntity(kb, name) {
  $("graph-status").textContent = "…";
  const response = await api(`/api/kbs/${encodeURIComponent(kb)}/graph/entity?name=${encodeURIComponent(name)}&limit=24`);
  const canvas = $("graph-canvas");
  if (!response.ok) { $("graph-status").textContent = await errorText(response); canvas.toggleAttribute("hidden", true); $("relations").replaceChildren(); return; }
  const found = await response.json();
  if (!found.kind) {
    $("graph-status").textContent = t("graph.none", { name });
    canvas.toggleAttribute("hidden", true);
    $("relations").replaceChildren();
    return;
  }
  const status = [t("graph.found", { name: found.entity, kind: found.kind, n: found.neighbors.length })];
  if (found.aliases.length) status.push(t("graph.also", { names: found.aliases.join(", ") }));
  $("graph-status").textContent = status.join(" · ");
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.append(marker);
  const parts = [defs];
  const n = found.neighbors.length;
  const nodes = [];
  found.neighbors.forEach((nb, i) => {
    const angle = (2 * Math.PI * i) / Math.max(n, 1) - Math.PI / 2;
    const [x, y] = [Math.cos(angle) * 300, Math.sin(angle) * 190];
    const [x1, y1, x2, y2] = nb.direction === "out" ? [0, 0, x, y] : [x, y, 0, 0];
    // Stop short of the labels so that the arrow heads show.
    const shorten = (ax, ay, bx, by) => { const d = Math.hypot(bx - ax, by - ay) || 1; return [bx - ((bx - ax) / d) * 34, by - ((by - ay) / d) * 16]; };
    const [ex, ey] = shorten(x1, y1, x2, y2);
    const [sx, sy] = shorten(x2, y2, x1, y1);
    parts.push(svg("line", { x1: sx, y1: sy, x2: ex, y2: ey, class: nb.relation === "related_to" ? "edge weak" : "edge", "marker-end": "url(#arrow)" }));
    parts.push(svg("text", { x: x / 2, y: y / 2 - 4, class: "relation" }, nb.relation.replaceAll("_", " ")));
    const label = svg("text", { x, y: y + 5, class: "node", tabindex: "0", role: "button" }, nb.entity);
    label.addEventListener("click", () => { $("entity").value = nb.entity; showEntity(kb, nb.entity); });
    label.addEventListener("keydown", (e) => { if (e.key === "Enter") { $("entity").value = nb.entity; showEntity(kb, nb.entity); } });
    nodes.push(label);
  });
  parts.push(...nodes, svg("text", { x: 0, y: 5, class: "node center" }, found.entity));
  canvas.replaceChildren(...parts);
  canvas.toggleAttribute("hidden", false);
  $("relations").replaceChildren(...found.neighbors.map((nb) => {
    const text = t(nb.direction === "out" ? "graph.out" : "graph.in", { name: found.entity, other: nb.entity, relation: nb.relation.replaceAll("_", " ") });
    return element("li", {}, element("span", {}, text), element("span", { class: "where" }, ` — ${nb.sources.join(", ")}`));
  }));
}

async function loadAdmin() {
  const [kbs, models] = await Promise.all([api("/api/kbs").then((r) => r.json()), api("/v1/models").then((r) => r.json())]);
  $("admin-kbs").replaceChildren(...kbs.kbs.map((k) => element("li", {}, k.name)));
  $("admin-models").replaceChildren(...models.data.filter((m) => !m.id.startsWith("kb/")).map((m) => element("li", {}, m.id)));
  if (!isAdmin) return;
  const [keys, jobs, people, audit] = await Promise.all(["/api/keys", "/api/jobs", "/api/users", "/api/audit?limit=50"].map((p) => api(p).then((r) => r.json())));
  $("users").tBodies[0].replaceChildren(...people.users.map((u) => {
    const groups = people.groups.filter((g) => g.member === `user:${u.name}`).map((g) => g.group).join(", ");
    const state = [u.admin ? t("admin.keyadmin") : "", u.disabled ? t("admin.disabled") : "", u.has_password ? t("admin.haspassword") : ""];
    const path = `/api/users/${encodeURIComponent(u.name)}`;
    const toggle = element("button", { type: "button", "aria-label": `${t(u.disabled ? "admin.enable" : "admin.disable")} ${u.name}` },
      t(u.disabled ? "admin.enable" : "admin.disable"));
    toggle.addEventListener("click", async () => { await api(path, { method: "PATCH", body: JSON.stringify({ disabled: !u.disabled }) }); loadAdmin(); });
    const remove = element("button", { type: "button", "aria-label": `${t("admin.deleteuser")} ${u.name}` }, t("admin.deleteuser"));
    remove.addEventListener("click", async () => {
      if (!confirm(t("admin.confirmuser", { name: u.name }))) return;
      await api(path, { method: "DELETE" });
      loadAdmin();
    });
    return element("tr", {}, element("td", {}, u.name), element("td", {}, groups), element("td", {}, state.filter(Boolean).join(" · ")),
      element("td", {}, toggle, remove));
  }));
  const chain = audit.chain;
  $("audit-chain").textContent = chain.ok ? t("admin.chainok", { n: chain.entries }) : t("admin.chainbroken", { seq: chain.seq, reason: chain.reason });
  $("audit").tBodies[0].replaceChildren(...audit.entries.slice().reverse().map((e) => element("tr", {},
    element("td", {}, String(e.seq)), element("td", {}, new Date(e.at).toLocaleString()), element("td", {}, e.actor),
    element("td", {}, e.action), element("td", {}, e.kb || ""))));
  $("keys").tBodies[0].replaceChildren(...keys.keys.map((k) => {
    const cell = element("td");
    if (!k.revoked) {
      const revoke = element("button", { type: "button", "aria-label": `${t("admin.revoke")} ${k.name}` }, t("admin.revoke"));
      revoke.addEventListener("click", async () => { await api(`/api/keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }); loadAdmin(); });
      cell.append(revoke);
    }
    const state = (k.revoked ? t("admin.revoked") : t("admin.active")) + (k.admin ? ` · ${t("admin.keyadmin")}` : "");
    return element("tr", {}, element("td", {}, k.id), element("td", {}, k.name), element("td", {}, k.user), element("td", {}, state), cell);
  }));
  $("jobs").tBodies[0].replaceChildren(...jobs.jobs.map((j) =>
    element("tr", {}, element("td", {}, String(j.id)), element("td", {}, j.kb), element("td", {}, j.state), element("td", {}, `${j.files_done} / ${j.files_total}`))));
}

document.addEventListener("DOMContentLoaded", () => {
  applyLanguage();
  $("lang").addEventListener("click", () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("zhiku.lang", lang); applyLanguage(); });
  $("logout").addEventListener("click", signOut);
  document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
  $("password-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("password-error").textContent = "";
    try { await signInWithPassword($("user").value.trim(), $("password").value); $("password").value = ""; }
    catch (err) { $("password-error").textContent = err.message; }
  });
  $("grant").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { principal: $("grant-principal").value.trim(), role: $("grant-role").value };
    const response = await api(`/api/kbs/${encodeURIComponent($("docs-kb").value)}/roles`, { method: "PUT", body: JSON.stringify(body) });
    $("grant-status").textContent = response.ok ? "" : await errorText(response);
    if (response.ok) { $("grant").reset(); loadRoles(); }
  });
  $("add-member").addEventListener("submit", async (e) => {
    e.preventDefault();
    const member = $("member-name").value.trim();
    const body = { member: member.includes(":") ? member : `user:${member}` };
    const response = await api(`/api/groups/${encodeURIComponent($("member-group").value.trim())}/members`, { method: "POST", body: JSON.stringify(body) });
    $("add-member-result").textContent = response.ok ? "" : await errorText(response);
    if (response.ok) { $("add-member").reset(); loadAdmin(); }
  });
  $("new-user").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("new-user-name").value.trim(), password: $("new-user-password").value || undefined, admin: $("new-user-admin").checked };
    const response = await api("/api/users", { method: "POST", body: JSON.stringify(body) });
    $("new-user-result").textContent = response.ok ? "" : await errorText(response);
    if (response.ok) { $("new-user").reset(); loadAdmin(); }
  });
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try { await signIn($("key").value.trim()); $("key").value = ""; } catch (err) { $("login-error").textContent = err.message; }
  });
  $("chat-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const question = $("question").value.trim();
    if (!question) return;
    $("question").value = "";
    $("send").disabled = true;
    try { await ask(question); } finally { $("send").disabled = false; $("question").focus(); }
  });
  $("question").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("chat-clear").addEventListener("click", () => {
    conversation = [];
    conversationId = newConversationId();
    $("messages").replaceChildren();
    $("history").value = "";
    $("question").focus();
  });
  $("history").addEventListener("change", () => { if ($("history").value) showConversation($("history").value); });
  $("docs-kb").addEventListener("change", loadDocuments);
  $("review-kb").addEventListener("change", loadPairs);
  $("review-status").addEventListener("change", loadPairs);
  $("files").addEventListener("change", () => { uploadFiles([...$("files").files]); $("files").value = ""; });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadFiles([...e.dataTransfer.files]); });
  $("new-kb").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("new-kb-name").value.trim();
    const acl = $("new-kb-acl").value.split(/[\s,]+/).filter(Boolean);
    const response = await api("/api/kbs", { method: "POST", body: JSON.stringify({ name, acl }) });
    if (response.ok) { $("new-kb-name").value = ""; await refreshKbs(null, name); loadDocuments(); }
    else $("upload-status").textContent = await errorText(response);
  });
  $("new-key").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: $("new-key-name").value.trim(), user: $("new-key-user").value.trim() || undefined, admin: $("new-key-admin").checked };
    const response = await api("/api/keys", { method: "POST", body: JSON.stringify(body) });
    if (!response.ok) { $("new-key-result").textContent = await errorText(response); return; }
    const created = await response.json();
    $("new-key-result").replaceChildren(t("admin.newkey"), element("code", {}, created.key));
    $("new-key").reset();
    loadAdmin();
  });
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("search-kb").value, $("query").value.trim()); });
  $("graph-form").addEventListener("submit", (e) => { e.preventDefault(); showEntity($("graph-kb").value, $("entity").value.trim()); });
  if (apiKey) signIn(apiKey).catch(() => signOut());
  else if (csrf) enter(t("login.badpassword")).catch(() => signOut());
  else enter(t("login.bad")).catch(() => show("login")); // signed in already by a single-sign-on proxy?
});
