/* The operator console (/admin): each page is a shell filled from the JSON API under
   /admin/api, with the operator session's own CSRF cookie (fg_admin_csrf). Support operators
   see everything but the forms that change things (the API refuses them anyway). */
"use strict";
(() => {
  const F = window.faregate;
  const { t, $, $$, el, show, hide, fmtDate, fmtUsd, LANG } = F;
  const body = document.body;
  const num = new Intl.NumberFormat(LANG);

  class AdminError extends Error {
    constructor(status, data) {
      const e = (data && data.error) || {};
      super(e.message || "");
      this.status = status;
      this.code = e.code || null;
    }
  }
  function errorText(err) {
    if (!(err instanceof AdminError)) return t("error.unknown");
    if (err.status === 0) return t("error.network");
    if (err.code && t("admin.error." + err.code) !== "admin.error." + err.code) {
      return t("admin.error." + err.code);
    }
    if (err.code && t("error." + err.code) !== "error." + err.code) return t("error." + err.code);
    if (err.status === 404) return t("admin.error.not_found");
    return err.message || t("error.unknown");
  }
  async function csrf() {
    const r = await fetch("/admin/api/auth/csrf", { credentials: "same-origin" });
    return (await r.json()).csrf_token;
  }
  async function api(method, path, payload, retried) {
    const headers = { Accept: "application/json" };
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = F.cookie("fg_admin_csrf") || (await csrf());
    let r;
    try {
      r = await fetch("/admin/api" + path, {
        method, headers, credentials: "same-origin",
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (_) { throw new AdminError(0, null); }
    if (r.status === 204) return null;
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const err = new AdminError(r.status, data);
      if (err.code === "csrf_failed" && !retried) { await csrf(); return api(method, path, payload, true); }
      if (r.status === 401 && body.dataset.page !== "admin_signin") {
        location.href = "/admin/signin?next=" + encodeURIComponent(location.pathname + location.search);
      }
      throw err;
    }
    return data;
  }
  function onSubmit(form, handler) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = $(".error", form);
      const ok = $(".ok", form);
      hide(error); hide(ok);
      const button = $("[type=submit]", form);
      if (button) button.disabled = true;
      try {
        const done = await handler(new FormData(form));
        if (ok && done) show(ok, done);
      } catch (err) {
        show(error, errorText(err));
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
  const topError = () => $("#admin-error");
  function fail(err) { show(topError(), errorText(err)); }
  function cell(text, cls) { return el("td", cls ? { class: cls } : {}, text === null || text === undefined ? "" : String(text)); }
  function rows(table, items, make) {
    $("tbody", $(table)).replaceChildren(...items.map(make));
  }
  function pill(active, onText, offText) {
    return el("span", { class: "pill " + (active ? "pill-active" : "pill-revoked") }, active ? onText : offText);
  }
  function link(href, text) { return el("a", { href }, text); }
  function idKey() { return Math.random().toString(36).slice(2) + Date.now().toString(36); }

  // The signed-in shell: who, their role, sign out. Support operators lose the forms.
  let me = null;
  async function shell() {
    me = await api("GET", "/me");
    const who = $("#op-who");
    if (who) who.textContent = `${me.email} · ${t("admin.role." + me.role)}`;
    body.dataset.role = me.role;
    $$(".admin-only").forEach((n) => { n.hidden = me.role !== "admin"; });
    const out = $("#op-signout");
    if (out) {
      out.addEventListener("click", async () => {
        try { await api("POST", "/auth/signout"); } finally { location.href = "/admin/signin"; }
      });
    }
    return me;
  }

  const P = F.pages;

  P.admin_signin = () => {
    const form = $("#admin-signin-form");
    $("#op-use-recovery").addEventListener("click", () => {
      const recovery = $("#op-recovery-field").hidden;
      $("#op-recovery-field").hidden = !recovery;
      $("#op-totp-field").hidden = recovery;
      (recovery ? $("#op-recovery") : $("#op-totp")).focus();
    });
    onSubmit(form, async (f) => {
      const usingRecovery = !$("#op-recovery-field").hidden;
      await api("POST", "/auth/signin", {
        email: f.get("email"), password: f.get("password"),
        totp_code: usingRecovery ? null : (f.get("totp_code") || null),
        recovery_code: usingRecovery ? (f.get("recovery_code") || null) : null,
      });
      location.href = body.dataset.next || "/admin";
    });
  };

  P.admin_search = async () => {
    try { await shell(); } catch (err) { fail(err); return; }
    const form = $("#admin-search-form");
    const query = $("#admin-query");
    query.value = new URLSearchParams(location.search).get("q") || "";
    async function run() {
      const q = encodeURIComponent(query.value.trim());
      const [orgs, users] = await Promise.all([
        api("GET", `/organizations?query=${q}&limit=50`), api("GET", `/users?query=${q}&limit=50`)]);
      rows("#admin-orgs", orgs.data, (o) => el("tr", {},
        el("td", {}, link(`/admin/orgs/${encodeURIComponent(o.id)}`, o.name)), cell(o.id),
        cell(num.format(o.members), "num"), cell(fmtDate(o.created_at)),
        el("td", {}, pill(!o.deactivated, t("admin.status.active"), t("admin.status.deactivated")))));
      $("#admin-orgs-empty").hidden = orgs.data.length > 0;
      rows("#admin-users", users.data, (u) => el("tr", {},
        cell(u.email), cell(u.id),
        el("td", {}, link(`/admin/orgs/${encodeURIComponent(u.organization_id)}`, u.organization_id)),
        cell(fmtDate(u.created_at)),
        el("td", {}, pill(!u.deactivated, t("admin.status.active"), t("admin.status.deactivated")))));
      $("#admin-users-empty").hidden = users.data.length > 0;
      history.replaceState(null, "", query.value.trim() ? `?q=${q}` : location.pathname);
    }
    onSubmit(form, run);
    try { await run(); } catch (err) { fail(err); }
  };

  P.admin_org = async () => {
    try { await shell(); } catch (err) { fail(err); return; }
    const id = body.dataset.org;
    const base = `/organizations/${encodeURIComponent(id)}`;
    let org = null;
    async function load() {
      org = await api("GET", base);
      $("#org-name").textContent = org.name;
      const active = !org.deactivated;
      $("#org-status").replaceWith(Object.assign(
        pill(active, t("admin.status.active"), t("admin.status.deactivated")), { id: "org-status" }));
      $("#org-deactivated").textContent = org.deactivated
        ? t("admin.org.deactivated_because", { reason: org.deactivated.reason || "–" }) : "";
      $("#org-balance").textContent = fmtUsd(org.balance.balance.usd);
      $("#org-available").textContent = fmtUsd(org.balance.available.usd);
      $("#org-tier").textContent = org.tier >= 100 ? t("admin.tier.unlimited") : String(org.tier);
      $("#org-usage").textContent = `${fmtUsd(org.usage.cost.usd)} · ${num.format(org.usage.requests)}`;
      $("#activation-title").textContent = t(active ? "admin.action.deactivate" : "admin.action.reactivate");
      $("#activation-submit").textContent = t(active ? "admin.action.deactivate" : "admin.action.reactivate");
      $("#activation-submit").className = "btn " + (active ? "btn-danger" : "btn-primary");
      $("#org-notes").replaceChildren(...org.notes.map((n) => el("li", {},
        el("span", { class: "muted" }, `${fmtDate(n.created_at)} · ${n.operator_id}`), el("p", {}, n.body))));
      rows("#org-ledger", org.ledger, (e) => el("tr", {},
        cell(fmtDate(e.created_at)), cell(e.kind), cell(fmtUsd(e.amount.usd), "num"), cell(e.reason), cell(e.actor)));
      rows("#org-members", org.members, (m) => el("tr", {}, cell(m.email), cell(m.role),
        el("td", {}, pill(!m.deactivated, t("admin.status.active"), t("admin.status.deactivated")))));
      const member = $("#phone-user");
      const chosen = member.value;
      member.replaceChildren(...org.members.map((m) => el("option", { value: m.user_id }, m.email)));
      if (chosen) member.value = chosen;
      rows("#org-keys", org.keys, (k) => el("tr", {}, cell(k.name), el("td", {}, el("code", {}, k.redacted)),
        cell(fmtDate(k.created_at)), cell(k.last_used_at ? fmtDate(k.last_used_at) : "–"),
        el("td", {}, pill(!k.revoked_at, t("admin.status.active"), t("admin.status.revoked")))));
      rows("#org-cards", org.payment_methods, (m) => el("tr", {}, cell(m.brand), cell(m.last4),
        cell(`${String(m.exp_month).padStart(2, "0")}/${m.exp_year}`)));
      rows("#org-risk", org.risk_decisions, (r) => el("tr", {}, cell(fmtDate(r.created_at)),
        cell(r.action), cell(r.decision), cell(r.reason)));
      rows("#org-audit", org.audit, (a) => el("tr", {}, cell(fmtDate(a.created_at)), cell(a.action),
        cell(a.actor), cell(a.target)));
    }
    onSubmit($("#grant-form"), async (f) => {
      await api("POST", base + "/grant", { amount_usd: f.get("amount_usd"),
        reason: f.get("reason"), idempotency_key: idKey() });
      const amount = fmtUsd(f.get("amount_usd"));
      $("#grant-form").reset();
      await load();
      return t("admin.done.granted", { amount });
    });
    onSubmit($("#adjust-form"), async (f) => {
      await api("POST", base + "/adjust", { amount_usd: f.get("amount_usd"),
        reason: f.get("reason"), idempotency_key: idKey() });
      $("#adjust-form").reset();
      await load();
      return t("admin.done.saved");
    });
    onSubmit($("#activation-form"), async (f) => {
      await api("POST", base + (org.deactivated ? "/reactivate" : "/deactivate"), { reason: f.get("reason") });
      $("#activation-form").reset();
      await load();
      return t("admin.done.saved");
    });
    onSubmit($("#refund-form"), async (f) => {
      const amount = String(f.get("amount_usd") || "").trim();
      const r = await api("POST", base + "/refund", { payment_id: String(f.get("payment_id")).trim(),
        amount_usd: amount || null, reason: f.get("reason"), idempotency_key: idKey() });
      $("#refund-form").reset();
      await load();
      return t("admin.done.refunded", { owed: fmtUsd(r.owed.usd) });
    });
    onSubmit($("#phone-form"), async (f) => {
      await api("POST", `/users/${encodeURIComponent(f.get("user_id"))}/reset-phone`, { reason: f.get("reason") });
      $("#phone-reason").value = "";
      await load();
      return t("admin.done.reset_phone");
    });
    onSubmit($("#codes-form"), async (f) => {
      const r = await api("POST", "/codes", { amount_usd: f.get("amount_usd"), count: Number(f.get("count")) });
      show($("#codes-out"), r.codes.join("\n"));
    });
    onSubmit($("#note-form"), async (f) => {
      await api("POST", "/notes", { target: `org:${id}`, body: f.get("body") });
      $("#note-form").reset();
      await load();
    });
    try { await load(); } catch (err) { fail(err); }
  };

  P.admin_models = async () => {
    try { await shell(); } catch (err) { fail(err); return; }
    const dialog = $("#price-dialog");
    const form = $("#price-form");
    let editing = null;
    async function load() {
      const list = await api("GET", "/models");
      rows("#admin-models", list.data, (m) => {
        const edit = el("td", { class: "actions" });
        if (me.role === "admin") {
          edit.append(el("button", { type: "button", class: "btn btn-small", onclick: () => {
            editing = m.id;
            $("#price-model").textContent = m.id;
            $("#price-input").value = m.price.input_usd_per_1m;
            $("#price-cached").value = m.price.cached_input_usd_per_1m;
            $("#price-output").value = m.price.output_usd_per_1m;
            $("#price-tier").value = m.min_tier;
            hide($(".error", form));
            dialog.showModal();
          } }, t("admin.models.edit")));
        }
        return el("tr", {}, el("td", {}, el("code", {}, m.id)), cell(t("admin.visibility." + m.visibility)),
          cell(m.min_tier, "num"), cell(fmtUsd(m.price.input_usd_per_1m), "num"),
          cell(fmtUsd(m.price.cached_input_usd_per_1m), "num"), cell(fmtUsd(m.price.output_usd_per_1m), "num"),
          cell(m.aliases.join(", ")), edit);
      });
    }
    onSubmit(form, async (f) => {
      await api("PATCH", `/models/${encodeURIComponent(editing)}`, {
        input_usd_per_1m: f.get("input_usd_per_1m"), cached_input_usd_per_1m: f.get("cached_input_usd_per_1m"),
        output_usd_per_1m: f.get("output_usd_per_1m"), min_tier: Number(f.get("min_tier")) });
      dialog.close();
      await load();
    });
    try { await load(); } catch (err) { fail(err); }
  };

  P.admin_upstreams = async () => {
    try { await shell(); } catch (err) { fail(err); return; }
    async function load() {
      const list = await api("GET", "/upstreams");
      rows("#admin-upstreams", list.data, (u) => el("tr", {},
        el("td", {}, el("strong", {}, u.name), el("br", {}), el("span", { class: "muted" }, u.base_url)),
        cell(Object.keys(u.models).join(", ")), cell(u.priority, "num"), cell(u.weight, "num"),
        el("td", {}, el("span", { class: "pill " + (u.breaker === "closed" ? "pill-active" : "pill-revoked") },
          t("admin.breaker." + u.breaker))),
        cell(t("admin.health." + u.health)), cell(num.format(u.requests), "num"),
        cell(u.error_rate === null ? "–" : new Intl.NumberFormat(LANG, { style: "percent", maximumFractionDigits: 1 }).format(u.error_rate), "num"),
        cell(u.mean_latency_ms === null ? "–" : `${num.format(Math.round(u.mean_latency_ms))} ms`, "num"),
        cell(u.last_error ? `${u.last_error} (${fmtDate(u.last_error_at)})` : "")));
    }
    try { await load(); } catch (err) { fail(err); }
    setInterval(() => load().catch(() => {}), 5000);
  };

  P.admin_audit = async () => {
    try { await shell(); } catch (err) { fail(err); return; }
    const form = $("#audit-form");
    const more = $("#audit-more");
    let cursor = null;
    let filters = "";
    function change(a) {
      const keys = Object.keys(Object.assign({}, a.before || {}, a.after || {}));
      return keys.map((k) => `${k}: ${JSON.stringify((a.before || {})[k] ?? null)} → ${JSON.stringify((a.after || {})[k] ?? null)}`).join("; ");
    }
    async function page(first) {
      const q = new URLSearchParams(filters);
      q.set("limit", "50");
      if (!first && cursor) q.set("cursor", cursor);
      const got = await api("GET", `/audit?${q}`);
      const made = got.data.map((a) => el("tr", {}, cell(fmtDate(a.created_at)), el("td", {}, el("code", {}, a.action)),
        cell(a.actor), cell(a.target), cell(change(a), "change")));
      const tbody = $("#admin-audit tbody");
      if (first) tbody.replaceChildren(...made); else tbody.append(...made);
      cursor = got.next_cursor;
      more.hidden = !cursor;
      $("#admin-audit-empty").hidden = tbody.children.length > 0;
    }
    onSubmit(form, async (f) => {
      const q = new URLSearchParams();
      for (const [k, v] of f.entries()) if (String(v).trim()) q.set(k, String(v).trim());
      filters = q.toString();
      await page(true);
    });
    more.addEventListener("click", () => page(false).catch(fail));
    try { await page(true); } catch (err) { fail(err); }
  };
})();
