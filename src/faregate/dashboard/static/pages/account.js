/* Limits, Organization and Settings: the organization's tier and rate limits, budgets and
   alerts; members, invitations and projects; the user's profile, language, password and
   sessions. Owners get the forms; members see the same facts read-only. */
"use strict";
(() => {
  const F = window.faregate;
  const { t, $, $$, el, api, show, hide, onSubmit, fmtDate, fmtUsd, errorText, LANG } = F;
  const num = new Intl.NumberFormat(LANG);
  const limit = (v) => (v === null || v === undefined ? t("limits.unlimited") : num.format(v));
  const cell = (text, cls) => el("td", cls ? { class: cls } : {}, text === null || text === undefined ? "" : String(text));
  const usd = (nano) => fmtUsd(String(nano / 1e9));

  async function context() {
    const { me, org } = await F.loadShell();
    const detail = await api("GET", `/api/orgs/${encodeURIComponent(org)}`);
    const owner = detail.role === "owner";
    $$(".owner-only").forEach((n) => { n.hidden = !owner; });
    return { me, org, detail, owner, base: `/api/orgs/${encodeURIComponent(org)}` };
  }

  F.pages.limits = async () => {
    const error = $("#limits-error");
    let ctx;
    try { ctx = await context(); } catch (err) { show(error, errorText(err)); return; }
    const { base, owner } = ctx;
    const dialog = $("#budget-dialog");
    let editing = null;
    async function load() {
      const [tier, projects, billing] = await Promise.all([
        api("GET", `${base}/usage/tier`), api("GET", `${base}/projects`),
        api("GET", `${base}/billing`).catch(() => null)]);
      $("#tier-name").textContent = tier.tier >= 100 ? t("limits.unlimited_tier") : `${tier.tier} · ${tier.name}`;
      $("#tier-rpm").textContent = limit(tier.rpm);
      $("#tier-tpm").textContent = limit(tier.tpm);
      $("#tier-key").textContent = `${limit(tier.key_rpm)} / ${limit(tier.key_tpm)}`;
      $("#tiers-table tbody").replaceChildren(...tier.next_tiers.map((n) => el("tr", {},
        cell(`${n.tier} · ${n.name}`), cell(usd(n.min_paid_nano), "num"),
        cell(t("limits.days", { n: n.min_age_days }), "num"), cell(limit(n.rpm), "num"),
        cell(limit(n.tpm), "num"))));
      $("#tiers-empty").hidden = tier.next_tiers.length > 0;
      $("#budgets-table tbody").replaceChildren(...projects.data.filter((p) => !p.archived).map((p) => {
        const b = p.budget;
        const edit = el("td", { class: "actions" });
        if (owner) {
          edit.append(el("button", { type: "button", class: "btn btn-small", onclick: () => {
            editing = p;
            $("#budget-project").textContent = p.name;
            $("#budget-amount").value = b ? b.monthly_budget.usd : "";
            $("#budget-pcts").value = p.budget_alert_pcts.join(", ");
            hide($(".error", $("#budget-form")));
            dialog.showModal();
          } }, t("limits.edit_budget")));
        }
        return el("tr", {}, cell(p.name), cell(b ? fmtUsd(b.monthly_budget.usd) : t("limits.no_budget"), "num"),
          cell(b ? fmtUsd(b.spent.usd) : "–", "num"), cell(b ? fmtUsd(b.remaining.usd) : "–", "num"),
          cell(p.budget_alert_pcts.map((x) => x + "%").join(", ")), edit);
      }));
      if (billing) $("#alert-amount").value = billing.low_balance_alert ? billing.low_balance_alert.usd : "";
      $("#alert-amount").disabled = !owner;
    }
    onSubmit($("#budget-form"), async (f) => {
      const amount = String(f.get("amount")).trim();
      const pcts = String(f.get("pcts")).split(",").map((s) => s.trim()).filter(Boolean).map(Number);
      await api("PATCH", `${base}/projects/${encodeURIComponent(editing.id)}`, {
        monthly_budget_usd: amount || null, budget_alert_pcts: pcts });
      dialog.close();
      await load();
    });
    onSubmit($("#alert-form"), async (f) => {
      const amount = String(f.get("amount")).trim();
      hide($(".ok", $("#alert-form")));
      await api("PUT", `${base}/billing/alerts`, { low_balance_usd: amount || null });
      show($(".ok", $("#alert-form")));
    });
    try { await load(); } catch (err) { show(error, errorText(err)); }
  };

  F.pages.organization = async () => {
    const error = $("#org-error");
    let ctx;
    try { ctx = await context(); } catch (err) { show(error, errorText(err)); return; }
    const { base, owner, me, detail } = ctx;
    $("#org-name").value = detail.name;
    $("#org-name").disabled = !owner;
    let renaming = null;
    async function load() {
      const [members, projects, invitations] = await Promise.all([
        api("GET", `${base}/members`), api("GET", `${base}/projects`),
        owner ? api("GET", `${base}/invitations`) : Promise.resolve({ data: [] })]);
      $("#members-table tbody").replaceChildren(...members.data.map((m) => {
        const actions = el("td", { class: "actions" });
        let role = cell(t("org.role." + m.role));
        if (owner && m.user_id !== me.id) {
          const select = el("select", { "aria-label": t("org.role") + " " + m.email },
            el("option", { value: "member" }, t("org.role.member")), el("option", { value: "owner" }, t("org.role.owner")));
          select.value = m.role;
          select.addEventListener("change", async () => {
            try { await api("PATCH", `${base}/members/${encodeURIComponent(m.user_id)}`, { role: select.value }); }
            catch (err) { show(error, errorText(err)); select.value = m.role; }
          });
          role = el("td", {}, select);
          actions.append(el("button", { type: "button", class: "btn btn-small btn-danger-quiet", onclick: async () => {
            try { await api("DELETE", `${base}/members/${encodeURIComponent(m.user_id)}`); await load(); }
            catch (err) { show(error, errorText(err)); }
          } }, t("org.remove")));
        }
        return el("tr", {}, cell(m.email), role, cell(fmtDate(m.joined_at)), actions);
      }));
      $("#invitations-table tbody").replaceChildren(...invitations.data.map((i) => el("tr", {},
        cell(i.email), cell(t("org.role." + i.role)), cell(fmtDate(i.expires_at)),
        el("td", { class: "actions" }, el("button", { type: "button", class: "btn btn-small", onclick: async () => {
          try { await api("DELETE", `${base}/invitations/${encodeURIComponent(i.id)}`); await load(); }
          catch (err) { show(error, errorText(err)); }
        } }, t("org.revoke_invitation"))))));
      $("#invitations-empty").hidden = invitations.data.length > 0;
      $("#projects-table tbody").replaceChildren(...projects.data.map((p) => {
        const actions = el("td", { class: "actions" });
        if (owner) {
          actions.append(el("button", { type: "button", class: "btn btn-small", onclick: () => {
            renaming = p;
            $("#project-new-name").value = p.name;
            hide($(".error", $("#project-rename-form")));
            $("#project-dialog").showModal();
          } }, t("org.rename")));
        }
        if (owner && !p.is_default) {
          actions.append(el("button", { type: "button", class: "btn btn-small", onclick: async () => {
            try { await api("PATCH", `${base}/projects/${encodeURIComponent(p.id)}`, { archived: !p.archived }); await load(); }
            catch (err) { show(error, errorText(err)); }
          } }, t(p.archived ? "org.unarchive" : "org.archive")));
        }
        const status = p.is_default ? t("org.default") : t(p.archived ? "org.archived" : "org.active");
        return el("tr", {}, cell(p.name), cell(fmtDate(p.created_at)), cell(status), actions);
      }));
    }
    onSubmit($("#rename-org-form"), async (f) => {
      hide($(".ok", $("#rename-org-form")));
      await api("PATCH", base, { name: String(f.get("name")).trim() });
      show($(".ok", $("#rename-org-form")));
    });
    onSubmit($("#invite-form"), async (f) => {
      await api("POST", `${base}/invitations`, { email: String(f.get("email")).trim(), role: f.get("role") });
      $("#invite-form").reset();
      await load();
    });
    onSubmit($("#project-rename-form"), async (f) => {
      await api("PATCH", `${base}/projects/${encodeURIComponent(renaming.id)}`, { name: String(f.get("name")).trim() });
      $("#project-dialog").close();
      await load();
    });
    onSubmit($("#project-form"), async (f) => {
      await api("POST", `${base}/projects`, { name: String(f.get("name")).trim() });
      $("#project-form").reset();
      await load();
    });
    try { await load(); } catch (err) { show(error, errorText(err)); }
  };

  F.pages.settings = async () => {
    const error = $("#settings-error");
    let me;
    try { ({ me } = await F.loadShell()); } catch (err) { show(error, errorText(err)); return; }
    $("#me-email").textContent = me.email;
    $("#me-phone").replaceChildren(me.phone.verified ? me.phone.masked
      : el("a", { href: "/phone" }, t("settings.verify_phone")));
    $("#me-created").textContent = fmtDate(me.created_at);
    $("#language").value = me.locale || "";
    onSubmit($("#language-form"), async (f) => {
      const locale = f.get("locale") || null;
      await api("PATCH", "/api/me", { locale });
      if (locale) {
        location.href = `/lang/${encodeURIComponent(locale)}?next=/settings`;
      } else {
        document.cookie = "fg_lang=; max-age=0; path=/; samesite=lax";
        location.reload();
      }
    });
    onSubmit($("#password-form"), async (f) => {
      if (f.get("new") !== f.get("confirm")) throw new F.UiError(t("error.password_mismatch"));
      await api("POST", "/api/me/password", { current_password: f.get("current"), new_password: f.get("new") });
      $("#password-form").reset();
      show($(".ok", $("#password-form")));
      await loadSessions();
    });
    async function loadSessions() {
      const list = await api("GET", "/api/me/sessions");
      $("#sessions-table tbody").replaceChildren(...list.data.map((s) => el("tr", {},
        cell(s.user_agent || "–", "ua"), cell(s.ip || "–"), cell(fmtDate(s.last_seen_at)),
        el("td", { class: "actions" }, s.current ? el("span", { class: "pill pill-active" }, t("settings.this_device"))
          : el("button", { type: "button", class: "btn btn-small", onclick: async () => {
            try { await api("DELETE", `/api/me/sessions/${encodeURIComponent(s.id)}`); await loadSessions(); }
            catch (err) { show(error, errorText(err)); }
          } }, t("settings.sign_out_session"))))));
    }
    try { await loadSessions(); } catch (err) { show(error, errorText(err)); }
  };
})();
