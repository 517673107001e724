/* Settings -> Billing: balance, saved cards ("Add payment details": brand detection and
   formatting; the card goes only to the processor's tokenization endpoint), top-up, and below
   them auto-recharge, redemption codes, receipts and the credit history. */
"use strict";
(() => {
  const F = window.faregate;
  const { api, t, $, $$, el, show, hide, onSubmit, fmtDate, fmtUsd, errorText, loadShell, UiError } = F;

  function cardBrand(digits) {
    if (/^4/.test(digits)) return "Visa";
    if (/^(5[1-5]|2[2-7])/.test(digits)) return "Mastercard";
    if (/^3[47]/.test(digits)) return "American Express";
    if (/^62/.test(digits)) return "UnionPay";
    if (/^(6011|65|64[4-9])/.test(digits)) return "Discover";
    if (/^35/.test(digits)) return "JCB";
    return "";
  }

  F.pages.billing = async () => {
    const error = $("#billing-error");
    let ctx, config;
    try {
      ctx = await loadShell();
      config = await api("GET", "/api/billing/config");
    } catch (err) {
      show(error, errorText(err));
      return;
    }
    const base = `/api/orgs/${encodeURIComponent(ctx.org)}`;

    async function load() {
      const b = await api("GET", base + "/billing");
      $("#balance").textContent = fmtUsd(b.balance.usd);
      $("#available").textContent = fmtUsd(b.available.usd);
      $("#suspended").hidden = b.status !== "suspended";
      const list = $("#methods");
      list.replaceChildren(...b.payment_methods.map((m) => {
        const exp = String(m.exp_month).padStart(2, "0") + "/" + String(m.exp_year).slice(-2);
        const item = el("li", { class: "method" },
          el("strong", {}, (m.brand || "").toUpperCase() + " •••• " + m.last4),
          el("span", { class: "muted" }, t("billing.expires", { date: exp })));
        if (m.is_default) item.append(el("span", { class: "pill pill-active" }, t("billing.default")));
        return item;
      }));
      $("#methods-empty").hidden = b.payment_methods.length > 0;
      return b;
    }

    // Top-up: the configured presets, or another amount within the range.
    const presets = $("#presets");
    presets.replaceChildren(...config.presets_usd.map((usd, i) => el("label", { class: "preset" },
      el("input", Object.assign({ type: "radio", name: "preset", value: usd }, i === 0 ? { checked: "" } : {})),
      el("span", {}, fmtUsd(usd)))));
    $("#topup-range").textContent = t("billing.topup_range",
      { min: fmtUsd(config.topup_min.usd), max: fmtUsd(config.topup_max.usd) });
    $("#topup-custom").addEventListener("input", (e) => {
      if (e.target.value) $$("input[name=preset]").forEach((r) => { r.checked = false; });
    });
    let afterTopUp = null;  // set once the sections below are loaded
    const topupForm = $("#topup-form");
    onSubmit(topupForm, async (f) => {
      hide($(".ok", topupForm));
      const amount = String(f.get("custom") || "").trim() || f.get("preset");
      if (!amount || !/^\d+(\.\d{1,2})?$/.test(amount)) throw new UiError(t("error.amount_format"));
      const key = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random();
      await api("POST", base + "/top-ups", { amount_usd: amount }, false, { "Idempotency-Key": key });
      const b = await load();
      show($(".ok", topupForm), t("billing.topup_done", { amount: fmtUsd(b.balance.usd) }));
      $("#topup-custom").value = "";
      if (afterTopUp) await afterTopUp();  // its receipt and credit-history line
    });

    // Add a card: the details go only to the processor's tokenization endpoint; Faregate
    // gets the token.
    const cardDialog = $("#card-dialog");
    const cardForm = $("#card-form");
    const number = $("#card-number");
    const exp = $("#card-exp");
    // Stripe mode: the card fields are Stripe's (Elements, in Stripe's frames); the number,
    // expiry and CVC never touch this page.
    const stripe = config.processor === "stripe" && window.Stripe && config.publishable_key
      ? window.Stripe(config.publishable_key, { locale: F.LANG === "zh-CN" ? "zh" : "en" }) : null;
    let stripeCard = null;
    if (number) {
      number.addEventListener("input", () => {
        const digits = number.value.replace(/\D/g, "").slice(0, 19);
        number.value = digits.replace(/(\d{4})(?=\d)/g, "$1 ");
        $("#card-brand").textContent = cardBrand(digits);
      });
      exp.addEventListener("input", () => {
        const d = exp.value.replace(/\D/g, "").slice(0, 4);
        exp.value = d.length > 2 ? d.slice(0, 2) + " / " + d.slice(2) : d;
      });
    }
    $("#card-new").addEventListener("click", () => {
      cardForm.reset();
      if ($("#card-brand")) $("#card-brand").textContent = "";
      hide($(".error", cardForm));
      hide($("#card-3ds"));
      if (!config.tokenize_url && !stripe) {
        show(error, t("billing.no_card_form"));
        return;
      }
      cardDialog.showModal();
      if (stripe && !stripeCard) {
        stripeCard = stripe.elements().create("card", { hidePostalCode: true });
        stripeCard.mount("#stripe-card");
      }
      if (number) number.focus();
    });
    const billingDetails = (f) => ({
      name: f.get("name") || undefined, line1: f.get("line1") || undefined,
      city: f.get("city") || undefined, postal_code: f.get("postal") || undefined,
      country: f.get("country"),
    });
    async function tokenize(f) {
      if (stripe) {
        const b = billingDetails(f);
        const made = await stripe.createPaymentMethod({ type: "card", card: stripeCard,
          billing_details: { name: b.name, address: { line1: b.line1, city: b.city,
            postal_code: b.postal_code, country: b.country } } });
        if (made.error) throw new UiError(made.error.message);
        return made.paymentMethod.id;
      }
      const e = String(f.get("exp")).replace(/\D/g, "");
      if (e.length !== 4) throw new UiError(t("error.card_expiry_format"));
      const token = await api("POST", config.tokenize_url, {
        number: String(f.get("number")).replace(/\D/g, ""),
        exp_month: Number(e.slice(0, 2)), exp_year: 2000 + Number(e.slice(2)),
        cvc: String(f.get("cvc")).trim(), postal_code: String(f.get("postal")).trim() || undefined,
        billing: billingDetails(f),
      });
      return token.id;
    }
    // The bank asks the cardholder to confirm the $5 check (3-D Secure): Stripe's own flow,
    // or the sandbox's stand-in (two buttons).
    function sandboxChallenge() {
      const box = $("#card-3ds");
      show(box);
      return new Promise((resolve) => {
        $("#card-3ds-ok").onclick = () => { hide(box); resolve("complete"); };
        $("#card-3ds-fail").onclick = () => { hide(box); resolve("fail"); };
      });
    }
    async function authenticate(pending) {
      if (stripe) {
        const done = await stripe.handleNextAction({ clientSecret: pending.client_secret });
        if (done.error) throw new UiError(done.error.message);
      } else if (pending.confirm_url) {
        const outcome = await sandboxChallenge();
        await api("POST", pending.confirm_url, { client_secret: pending.client_secret,
          authentication: outcome });
      }
      await api("POST", base + "/payment-methods/confirm", {
        payment_method_id: pending.payment_method_id, verification_id: pending.verification_id });
    }
    onSubmit(cardForm, async (f) => {
      const id = await tokenize(f);
      const saved = await api("POST", base + "/payment-methods", { payment_method_id: id });
      if (saved && saved.status === "requires_action") await authenticate(saved);
      cardForm.reset();  // card details do not linger in the page
      if (stripeCard) stripeCard.clear();
      cardDialog.close();
      await load();
    });

    try { await load(); } catch (err) { show(error, errorText(err)); }
    afterTopUp = await extras(config, base, load);
  };


  // --- auto-recharge, codes, receipts, credit history ----------------------------------------
  async function extras(config, base, reloadTop) {
    const auto = $("#auto-form");
    const usdRe = /^\d+(\.\d{1,2})?$/;
    const cents = (usd) => Math.round(Number(usd) * 100);
    $("#auto-range").textContent = t("billing.topup_range",
      { min: fmtUsd(config.topup_min.usd), max: fmtUsd(config.topup_max.usd) });
    async function loadAll() {
      const [billing, receipts, history] = await Promise.all([
        api("GET", base + "/billing"), api("GET", base + "/receipts"),
        api("GET", base + "/credit-history?limit=50")]);
      const a = billing.auto_recharge;
      $("#auto-enabled").checked = a.enabled;
      $("#auto-threshold").value = a.threshold ? a.threshold.usd : "";
      $("#auto-amount").value = a.amount ? a.amount.usd : "";
      const select = $("#auto-method");
      select.replaceChildren(el("option", { value: "" }, t("billing.auto_default_card")),
        ...billing.payment_methods.map((m) => el("option", { value: m.id },
          `${(m.brand || "").toUpperCase()} •••• ${m.last4}`)));
      select.value = a.payment_method_id || "";
      $("#receipts-table tbody").replaceChildren(...receipts.data.map((r) => el("tr", {},
        el("td", {}, String(r.number)), el("td", {}, fmtDate(r.created_at)),
        el("td", { class: "num" }, fmtUsd(r.amount.usd)),
        el("td", {}, r.last4 ? `${(r.brand || "").toUpperCase()} •••• ${r.last4}` : ""),
        el("td", { class: "actions" }, el("a", { href: r.html_url, target: "_blank", rel: "noopener" }, t("billing.receipt_view")),
          " ", el("a", { href: r.pdf_url, download: "" }, "PDF")))));
      $("#receipts-empty").hidden = receipts.data.length > 0;
      $("#history-table tbody").replaceChildren(...history.data.map((h) => el("tr", {},
        el("td", {}, fmtDate(h.created_at)),
        el("td", {}, t("billing.kind." + h.kind) === "billing.kind." + h.kind ? h.kind : t("billing.kind." + h.kind)),
        el("td", { class: "num " + (h.amount.nano_usd < 0 ? "" : "ok") }, fmtUsd(h.amount.usd)),
        el("td", {}, h.reason || ""))));
      $("#history-empty").hidden = history.data.length > 0;
    }
    onSubmit(auto, async (f) => {
      hide($(".ok", auto));
      const enabled = $("#auto-enabled").checked;
      const threshold = String(f.get("threshold") || "").trim();
      const amount = String(f.get("amount") || "").trim();
      if (enabled && (!usdRe.test(threshold) || !usdRe.test(amount))) {
        throw new UiError(t("error.amount_format"));
      }
      if (enabled && (cents(amount) < cents(config.topup_min.usd)
          || cents(amount) > cents(config.topup_max.usd))) {
        throw new UiError(t("billing.topup_range",
          { min: fmtUsd(config.topup_min.usd), max: fmtUsd(config.topup_max.usd) }));
      }
      await api("PUT", base + "/auto-recharge", { enabled, threshold_usd: threshold || null,
        amount_usd: amount || null, payment_method_id: f.get("method") || null });
      show($(".ok", auto));
      await loadAll();
    });
    const redeem = $("#redeem-form");
    onSubmit(redeem, async (f) => {
      hide($(".ok", redeem));
      const r = await api("POST", base + "/redeem", { code: String(f.get("code")).trim() });
      redeem.reset();
      show($(".ok", redeem), t("billing.redeemed", { amount: fmtUsd(r.amount.usd) }));
      await reloadTop();
      await loadAll();
    });
    try { await loadAll(); } catch (err) { show($("#billing-error"), errorText(err)); }
    return loadAll;
  }
})();
