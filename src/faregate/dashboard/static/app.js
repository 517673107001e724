/* Faregate dashboard: a little vanilla JS over the JSON API (/api). No inline script anywhere
   (the Content-Security-Policy forbids it); each page's code runs by <body data-page>. */
"use strict";
(() => {
  const M = JSON.parse(document.getElementById("fg-i18n").textContent);
  const body = document.body;
  const LANG = body.dataset.lang || "en";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function t(key, vars) {
    let s = Object.prototype.hasOwnProperty.call(M, key) ? M[key] : key;
    for (const [k, v] of Object.entries(vars || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  // --- formatting in the page's language -------------------------------------------------
  function fmtDate(iso) {
    if (!iso) return "";
    return new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "short" })
      .format(new Date(iso));
  }
  function fmtUsd(usd) {
    const n = Number(usd);
    const digits = (String(usd).split(".")[1] || "").replace(/0+$/, "").length;
    return new Intl.NumberFormat(LANG, {
      style: "currency", currency: "USD",
      minimumFractionDigits: 2, maximumFractionDigits: Math.min(Math.max(2, digits), 9),
    }).format(n);
  }

  // --- the JSON API, with the CSRF token it expects ---------------------------------------
  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }
  async function freshCsrf() {
    const r = await fetch("/api/auth/csrf", { credentials: "same-origin" });
    return (await r.json()).csrf_token;
  }
  class ApiError extends Error {
    constructor(status, data) {
      const e = (data && data.error) || {};
      super(e.message || "");
      this.status = status;
      this.code = e.code || null;
      this.param = e.param || null;
    }
  }
  async function api(method, path, payload, retried, extra) {
    const headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = cookie("fg_csrf") || (await freshCsrf());
    let r;
    try {
      r = await fetch(path, {
        method, headers, credentials: "same-origin",
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (_) {
      throw new ApiError(0, null);
    }
    if (r.status === 204) return null;
    let data = null;
    try { data = await r.json(); } catch (_) { data = null; }
    if (!r.ok) {
      const err = new ApiError(r.status, data);
      if (err.code === "csrf_failed" && !retried) {  // a stale token: get a new one, once
        await freshCsrf();
        return api(method, path, payload, true, extra);
      }
      if (r.status === 401 && err.code === "not_signed_in" && body.dataset.page !== "signin") {
        location.href = "/signin?next=" + encodeURIComponent(location.pathname);
      }
      throw err;
    }
    return data;
  }
  // The API's messages are English; known codes get the page's language.
  class UiError extends Error {}  // a message already in the page's language
  function errorText(err) {
    if (err instanceof UiError) return err.message;
    if (!(err instanceof ApiError)) return t("error.unknown");
    if (err.status === 0) return t("error.network");
    if (err.code && Object.prototype.hasOwnProperty.call(M, "error." + err.code)) {
      return t("error." + err.code);
    }
    if (err.status === 429) return t("error.rate_limit_exceeded");
    if (err.code === "invalid_value" && err.param) return t("error.invalid_field");
    return err.message || t("error.unknown");
  }

  // --- small DOM helpers ------------------------------------------------------------------
  function show(el, text) {
    if (!el) return;
    if (text !== undefined) el.textContent = text;
    el.hidden = false;
  }
  function hide(el) { if (el) el.hidden = true; }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }
  function onSubmit(form, handler) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = $(".error", form);
      hide(error);
      const button = $("[type=submit]", form);
      if (button) button.disabled = true;
      try {
        await handler(new FormData(form));
      } catch (err) {
        show(error, errorText(err));
      } finally {
        if (button) button.disabled = false;
      }
    });
  }
  function takeToken() {  // read the emailed token, then drop it from the address bar
    const token = new URLSearchParams(location.search).get("token");
    if (token) history.replaceState(null, "", location.pathname);
    return token;
  }
  $$("dialog [data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));

  // --- the signed-in shell: organization switcher, sign out --------------------------------
  let shell = null;
  function loadShell() {
    shell = shell || (async () => {
      const me = await api("GET", "/api/me");
      const orgs = me.organizations;
      let org = localStorage.getItem("fg_org");
      if (!orgs.some((o) => o.id === org)) org = me.personal_organization_id;
      const select = $("#org-select");
      if (select) {
        select.replaceChildren(...orgs.map((o) => el("option", { value: o.id }, o.name)));
        select.value = org;
        select.addEventListener("change", () => {
          localStorage.setItem("fg_org", select.value);
          location.reload();
        });
      }
      // A suspended organization says so on every page (members who cannot read the
      // billing simply see no banner).
      // A deactivated organization says why and what to do, on every page.
      api("GET", `/api/orgs/${encodeURIComponent(org)}`).then((o) => {
        if (o.deactivated) {
          notice(t("org.deactivated_banner", { reason: o.deactivated_reason || "–" }));
          const box = $("#notice");
          if (box) box.classList.replace("banner-warn", "banner-danger");
        }
      }).catch(() => {});
      api("GET", `/api/orgs/${encodeURIComponent(org)}/billing`).then((b) => {
        if (b.status === "suspended" && body.dataset.page !== "billing") {
          notice(t("billing.suspended"), "/billing", t("billing.fix"));
        }
      }).catch(() => {});
      return { me, org };
    })();
    return shell;
  }
  const signout = $("#signout");
  if (signout) {
    signout.addEventListener("click", async () => {
      try { await api("POST", "/api/auth/signout"); } finally { location.href = "/signin"; }
    });
  }
  // A signed-in user's language choice is remembered on their account too (PATCH /api/me),
  // so another browser opens in it; the link itself sets this browser's cookie.
  if (body.dataset.signedIn === "1") {
    $$(".langs a[hreflang]").forEach((a) => a.addEventListener("click", async (e) => {
      e.preventDefault();
      try { await api("PATCH", "/api/me", { locale: a.getAttribute("hreflang") }); } catch (_) { /* the cookie still works */ }
      location.href = a.href;
    }));
  }
  function notice(text, href, linkText) {
    const box = $("#notice");
    if (!box) return;
    const line = el("p", {}, text + " ");
    if (href) line.append(el("a", { href }, linkText));
    box.append(line);
    box.hidden = false;
  }

  // --- pages ------------------------------------------------------------------------------
  const pages = {};

  pages.signin = () => {
    onSubmit($("#signin-form"), async (f) => {
      const out = await api("POST", "/api/auth/signin",
        { email: f.get("email"), password: f.get("password") });
      location.href = out.user.email_verified ? body.dataset.next : "/verify-email";
    });
  };

  pages.signup = () => {
    onSubmit($("#signup-form"), async (f) => {
      const payload = { email: f.get("email"), password: f.get("password") };
      if (f.get("name")) payload.name = f.get("name");
      await api("POST", "/api/auth/signup", payload);
      location.href = "/verify-email";
    });
  };

  pages.verify_email = async () => {
    const token = takeToken();
    const error = $("main .error");
    if (!token) {
      show($("#verify-pending"));
      const resend = $("#verify-resend");
      if (resend) {
        resend.addEventListener("click", async () => {
          hide(error);
          resend.disabled = true;
          try {
            await api("POST", "/api/auth/verify-email/resend");
            show($("#verify-sent"));
          } catch (err) {
            show(error, errorText(err));
          } finally {
            resend.disabled = false;
          }
        });
      }
      return;
    }
    show($("#verify-working"));
    try {
      await api("POST", "/api/auth/verify-email", { token });
      hide($("#verify-working"));
      if (body.dataset.signedIn !== "1") $("#verify-continue").href = "/signin?next=/phone";
      show($("#verify-done"));
    } catch (err) {
      hide($("#verify-working"));
      show(error, errorText(err));
    }
  };

  pages.forgot_password = () => {
    const form = $("#forgot-form");
    onSubmit(form, async (f) => {
      hide($(".ok", form));
      await api("POST", "/api/auth/password-reset", { email: f.get("email") });
      show($(".ok", form));
    });
  };

  pages.reset_password = () => {
    const token = takeToken();
    const form = $("#reset-form");
    if (!token) show($(".error", form), t("error.invalid_token"));
    onSubmit(form, async (f) => {
      if (f.get("password") !== f.get("password2")) throw new UiError(t("error.password_mismatch"));
      await api("POST", "/api/auth/password-reset/confirm",
        { token, password: f.get("password") });
      hide(form);
      show($("#reset-done"));
    });
  };

  pages.phone = async () => {
    const phoneForm = $("#phone-form");
    const codeForm = $("#code-form");
    const resend = $("#resend");
    let last = null;  // the number the code went to, for "resend"
    let timer = null;

    function verified(masked) {
      hide(phoneForm); hide(codeForm);
      $("#phone-masked").textContent = masked || "";
      show($("#phone-verified"));
    }
    function countdown(resendAt) {
      clearInterval(timer);
      const wait = $("#resend-wait");
      const tick = () => {
        const s = Math.ceil((new Date(resendAt) - Date.now()) / 1000);
        if (s > 0) {
          resend.disabled = true;
          wait.textContent = t("phone.resend_in", { s: new Intl.NumberFormat(LANG).format(s) });
        } else {
          clearInterval(timer);
          resend.disabled = last === null;
          wait.textContent = "";
        }
      };
      tick();
      timer = setInterval(tick, 1000);
    }
    function codeSent(out) {
      hide(phoneForm);
      $("#code-masked").textContent = out.masked;
      show(codeForm);
      $("#code").focus();
      countdown(out.resend_at);
    }
    async function send() {
      codeSent(await api("POST", "/api/me/phone/code", last));
    }

    onSubmit(phoneForm, async (f) => {
      last = { phone: String(f.get("phone")).trim(), country: f.get("country") };
      await send();
    });
    onSubmit(codeForm, async (f) => {
      const out = await api("POST", "/api/me/phone/verify",
        { code: String(f.get("code")).trim() });
      clearInterval(timer);
      verified(out.masked);
    });
    resend.addEventListener("click", async () => {
      const error = $(".error", codeForm);
      hide(error);
      try { await send(); } catch (err) { show(error, errorText(err)); }
    });
    $("#change-number").addEventListener("click", () => {
      clearInterval(timer);
      hide(codeForm);
      show(phoneForm);
      $("#phone").focus();
    });

    try {
      const st = await api("GET", "/api/me/phone");
      if (st.verified) verified(st.masked);
      else if (st.pending) codeSent(st.pending);
      else show(phoneForm);
    } catch (err) {
      show(phoneForm);
      show($(".error", phoneForm), errorText(err));
    }
  };

  pages.keys = async () => {
    const error = $("#keys-error");
    const tbody = $("#keys-table tbody");
    let projects = [];
    let ctx;
    try {
      ctx = await loadShell();
    } catch (err) {
      show(error, errorText(err));
      return;
    }
    const base = `/api/orgs/${encodeURIComponent(ctx.org)}`;
    if (!ctx.me.phone.verified) notice(t("keys.need_phone"), "/phone", t("keys.verify_phone"));

    async function loadProjects() {
      projects = (await api("GET", base + "/projects")).data.filter((p) => !p.archived);
      $("#key-project").replaceChildren(...projects.map((p) =>
        el("option", { value: p.id }, p.is_default ? t("keys.default_project", { name: p.name }) : p.name)));
    }
    function projectName(id) {
      const p = projects.find((x) => x.id === id);
      return p ? p.name : "";
    }
    async function loadKeys() {
      hide(error);
      const keys = (await api("GET", base + "/keys")).data;
      tbody.replaceChildren(...keys.map((k) => {
        const actions = el("td", { class: "actions" });
        if (k.status === "active") {
          actions.append(
            el("button", { type: "button", class: "btn btn-small", onclick: () => rename(k) }, t("keys.rename")),
            el("button", { type: "button", class: "btn btn-small btn-danger-quiet", onclick: () => revoke(k) }, t("keys.revoke")));
        }
        return el("tr", { "data-key-id": k.id },
          el("td", {}, k.name),
          el("td", {}, el("code", {}, k.redacted_value)),
          el("td", {}, projectName(k.project_id)),
          el("td", {}, fmtDate(k.created_at)),
          el("td", {}, k.last_used_at ? fmtDate(k.last_used_at) : t("keys.never_used")),
          el("td", {}, el("span", { class: "pill pill-" + k.status }, t("status." + k.status))),
          actions);
      }));
      $("#keys-empty").hidden = keys.length > 0;
    }

    const keyDialog = $("#key-dialog");
    const keyForm = $("#key-form");
    $("#key-new").addEventListener("click", () => {
      keyForm.reset();
      hide($("#key-scopes"));
      hide($(".error", keyForm));
      keyDialog.showModal();
      $("#key-name").focus();
    });
    $$("input[name=permissions]", keyForm).forEach((r) => r.addEventListener("change", () => {
      $("#key-scopes").hidden = keyForm.permissions.value !== "restricted";
    }));
    onSubmit(keyForm, async (f) => {
      const payload = {
        name: String(f.get("name")).trim(), project_id: f.get("project") || null,
        permissions: f.get("permissions"),
      };
      if (payload.permissions === "restricted") payload.scopes = f.getAll("scope");
      const limit = String(f.get("limit") || "").trim();
      if (limit) { payload.spend_limit_usd = limit; payload.spend_limit_period = f.get("period"); }
      if (f.get("expiry")) payload.expires_in_days = Number(f.get("expiry"));
      const created = await api("POST", base + "/keys", payload);
      keyDialog.close();
      $("#secret-value").value = created.key;
      hide($("#secret-copied"));
      $("#secret-dialog").showModal();
      $("#secret-value").select();
      await loadKeys();
    });
    $("#secret-dialog").addEventListener("close", () => { $("#secret-value").value = ""; });
    $("#secret-copy").addEventListener("click", async () => {
      const input = $("#secret-value");
      try {
        await navigator.clipboard.writeText(input.value);
      } catch (_) {
        input.select();
        document.execCommand("copy");
      }
      show($("#secret-copied"));
    });

    let renaming = null;
    function rename(k) {
      renaming = k;
      $("#rename-name").value = k.name;
      hide($("#rename-form .error"));
      $("#rename-dialog").showModal();
    }
    onSubmit($("#rename-form"), async (f) => {
      await api("PATCH", `${base}/keys/${renaming.id}`, { name: String(f.get("name")).trim() });
      $("#rename-dialog").close();
      await loadKeys();
    });
    let revoking = null;
    function revoke(k) {
      revoking = k;
      $("#revoke-name").textContent = k.name;
      hide($("#revoke-form .error"));
      $("#revoke-dialog").showModal();
    }
    onSubmit($("#revoke-form"), async () => {
      await api("DELETE", `${base}/keys/${revoking.id}`);
      $("#revoke-dialog").close();
      await loadKeys();
    });

    try {
      await loadProjects();
      await loadKeys();
    } catch (err) {
      show(error, errorText(err));
    }
  };

  // Page scripts (static/pages/<name>.js, loaded after this one) add their function to
  // faregate.pages with the helpers below; the page's function runs once all scripts are in.
  window.faregate = {
    pages, api, t, $, $$, el, show, hide, onSubmit, fmtDate, fmtUsd, errorText, loadShell,
    notice, takeToken, cookie, LANG, UiError,
  };
  function start() {
    if (document.getElementById("org-select")) loadShell().catch(() => {});
    const run = pages[body.dataset.page];
    if (run) run();
  }
  // Deferred scripts all run before DOMContentLoaded, so every page script is in by then.
  document.addEventListener("DOMContentLoaded", start);
})();
