// zhiku's embeddable chat widget: one tag on an intranet page,
//   <script src="https://zhiku.example/widget.js" data-kb="handbook" data-key="zk_..." data-lang="zh"></script>
// opens a small chat that answers from the knowledge base with its sources. The key is visible
// to everyone who can open the page: give it a user that may read only what the page's readers
// may, and add the page's origin to server.cors_origins. Everything lives in a shadow root, so
// the page's styles and the widget's do not mix.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script) return;
  const base = new URL(script.src).origin;
  const kb = script.dataset.kb;
  const key = script.dataset.key;
  const zh = (script.dataset.lang || navigator.language || "").toLowerCase().startsWith("zh");
  const text = zh
    ? { open: "问知库", title: "知库问答", placeholder: "请输入问题……", send: "发送", sources: "来源：", failed: "回答失败：", close: "关闭" }
    : { open: "Ask zhiku", title: "Ask the knowledge base", placeholder: "Ask a question…", send: "Send", sources: "Sources:", failed: "The answer failed: ", close: "Close" };

  const host = document.createElement("div");
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = `
<style>
  :host { all: initial; }
  * { box-sizing: border-box; font-family: system-ui, "Noto Sans", "PingFang SC", "Microsoft YaHei", sans-serif; }
  .launcher { position: fixed; right: 1.25rem; bottom: 1.25rem; z-index: 2147483000; padding: .6rem 1rem; border: 0; border-radius: 2rem; background: #0b5cad; color: #fff; font-size: 1rem; cursor: pointer; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
  .panel { position: fixed; right: 1.25rem; bottom: 4.5rem; z-index: 2147483000; width: min(24rem, calc(100vw - 2.5rem)); max-height: 70vh; display: flex; flex-direction: column; background: #fff; color: #1d232a; border: 1px solid #d7dde2; border-radius: .75rem; box-shadow: 0 4px 16px rgba(0,0,0,.2); }
  .panel[hidden] { display: none; }
  header { display: flex; justify-content: space-between; align-items: center; padding: .5rem .75rem; border-bottom: 1px solid #d7dde2; font-weight: 600; }
  ol { list-style: none; margin: 0; padding: .75rem; overflow-y: auto; display: grid; gap: .5rem; flex: 1; }
  li { padding: .5rem .65rem; border-radius: .5rem; background: #f3f5f7; white-space: pre-wrap; line-height: 1.45; font-size: .95rem; }
  li.user { background: #e8f1fb; margin-left: 15%; }
  .sources { margin-top: .4rem; font-size: .85rem; display: flex; flex-wrap: wrap; gap: .25rem; }
  .sources button, header button { border: 1px solid #9fc3ea; background: #fff; color: #0b5cad; border-radius: .3rem; cursor: pointer; font-size: .85rem; }
  .passage { display: block; margin-top: .35rem; padding: .4rem; background: #fff3b0; font-size: .85rem; white-space: pre-wrap; }
  form { display: flex; gap: .4rem; padding: .5rem; border-top: 1px solid #d7dde2; }
  input { flex: 1; padding: .4rem .5rem; border: 1px solid #d7dde2; border-radius: .4rem; font-size: .95rem; }
  form button { padding: .4rem .8rem; border: 0; border-radius: .4rem; background: #0b5cad; color: #fff; cursor: pointer; }
  :focus-visible { outline: 3px solid #f0a30a; outline-offset: 2px; }
</style>
<button class="launcher" type="button" aria-expanded="false"></button>
<section class="panel" hidden role="dialog" aria-label="">
  <header><span class="title"></span><button type="button" class="close"></button></header>
  <ol aria-live="polite"></ol>
  <form><input required aria-label=""><button type="submit"></button></form>
</section>`;
  const $ = (selector) => root.querySelector(selector);
  $(".launcher").textContent = text.open;
  $(".title").textContent = text.title;
  $(".panel").setAttribute("aria-label", text.title);
  $(".close").textContent = text.close;
  $("input").placeholder = text.placeholder;
  $("input").setAttribute("aria-label", text.placeholder);
  $("form button").textContent = text.send;

  const toggle = (open) => {
    $(".panel").hidden = !open;
    $(".launcher").setAttribute("aria-expanded", String(open));
    if (open) $("input").focus(); else $(".launcher").focus();
  };
  $(".launcher").addEventListener("click", () => toggle($(".panel").hidden));
  $(".close").addEventListener("click", () => toggle(false));
  $(".panel").addEventListener("keydown", (e) => { if (e.key === "Escape") toggle(false); });

  const call = (path, body) => fetch(base + path, {
    method: body ? "POST" : "GET",
    headers: Object.assign({ Authorization: `Bearer ${key}` }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });

  async function ask(question) {
    const messages = $("ol");
    const q = document.createElement("li");
    q.className = "user";
    q.textContent = question;
    const a = document.createElement("li");
    messages.append(q, a);
    let answer = "";
    let citations = [];
    try {
      const response = await call("/v1/chat/completions", { model: `kb/${kb}`, stream: true, messages: [{ role: "user", content: question }] });
      if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error?.message || `HTTP ${response.status}`);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffered.indexOf("\n\n")) >= 0) {
          const data = buffered.slice(0, cut).split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
          buffered = buffered.slice(cut + 2);
          if (!data || data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) { answer += delta; a.textContent = answer; messages.scrollTop = messages.scrollHeight; }
          if (chunk.citations) citations = chunk.citations;
        }
      }
      a.textContent = answer.trim();
      if (citations.length) {
        const list = document.createElement("div");
        list.className = "sources";
        list.append(text.sources);
        for (const c of citations) {
          const b = document.createElement("button");
          b.type = "button";
          b.textContent = `[${c.n}] ${c.source.split("/").pop()}`;
          b.addEventListener("click", async () => {
            const r = await call(`/api/kbs/${encodeURIComponent(kb)}/chunks/${encodeURIComponent(c.chunk_id)}`);
            if (!r.ok) return;
            const passage = document.createElement("span");
            passage.className = "passage";
            passage.textContent = (await r.json()).text;
            b.replaceWith(passage);
          });
          list.append(b);
        }
        a.append(list);
      }
    } catch (e) {
      a.textContent = text.failed + e.message;
    }
  }

  $("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const question = $("input").value.trim();
    if (!question) return;
    $("input").value = "";
    ask(question);
  });
  (document.body || document.documentElement).append(host);
})();
