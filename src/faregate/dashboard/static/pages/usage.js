/* The Usage page: totals, two bar charts (SVG, drawn here: no chart library needed for bars),
   a grouped table, CSV export, and a live feed of requests as they are billed (Server-Sent
   Events, falling back to polling /recent). Costs keep every digit of a fraction of a cent. */
"use strict";
(() => {
  const F = window.faregate;
  const { t, $, el, api, fmtUsd, show, hide, errorText, LANG } = F;
  const SVG = "http://www.w3.org/2000/svg";
  const DAY = 86400;
  const num = new Intl.NumberFormat(LANG);
  const compact = new Intl.NumberFormat(LANG, { notation: "compact", maximumFractionDigits: 1 });

  function isoDay(date) { return date.toISOString().slice(0, 10); }
  function daysAgo(n) { return isoDay(new Date(Date.now() - n * DAY * 1000)); }
  function dayLabel(posix) {
    return new Intl.DateTimeFormat(LANG, { month: "short", day: "numeric", timeZone: "UTC" })
      .format(new Date(posix * 1000));
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  }

  // A bar chart: one bar per day, stacked series; the tallest day's value labels the top.
  function barChart(box, days, series, format) {
    const W = 640, H = 220, L = 8, R = 8, T = 22, B = 26;
    const totals = days.map((_, i) => series.reduce((s, ser) => s + ser.values[i], 0));
    const max = Math.max(0, ...totals);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "bars",
      preserveAspectRatio: "none", "aria-hidden": "true" });
    chart.append(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
    if (max <= 0) {
      chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "label" },
        t("usage.chart_empty")));
    } else {
      const step = (W - L - R) / days.length;
      const bw = Math.max(1, step * 0.7);
      days.forEach((day, i) => {
        let y = H - B;
        series.forEach((ser) => {
          const h = (ser.values[i] / max) * (H - T - B);
          if (h <= 0) return;
          y -= h;
          const bar = svg("rect", { x: L + i * step + (step - bw) / 2, y, width: bw,
            height: h, class: ser.cls });
          bar.append(svg("title", {}, `${dayLabel(day)}: ${ser.label} ${format(ser.values[i])}`));
          chart.append(bar);
        });
      });
      chart.append(svg("text", { x: L, y: 14, class: "label" }, format(max)));
      chart.append(svg("text", { x: L, y: H - 8, class: "label" }, dayLabel(days[0])));
      chart.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "label" },
        dayLabel(days[days.length - 1])));
    }
    box.replaceChildren(chart);
  }

  F.pages.usage = async () => {
    const form = $("#usage-filters");
    const error = $(".error", form);
    const range = $("#usage-range");
    const group = $("#usage-group");
    let org;
    try {
      ({ org } = await F.loadShell());
    } catch (err) { show(error, errorText(err)); return; }
    const base = `/api/orgs/${encodeURIComponent(org)}/usage`;
    range.addEventListener("change", () => {
      const custom = range.value === "custom";
      $("#usage-custom-start").hidden = !custom;
      $("#usage-custom-end").hidden = !custom;
      if (custom && !$("#usage-start").value) {
        $("#usage-start").value = daysAgo(29);
        $("#usage-end").value = daysAgo(0);
      }
    });

    function query() {
      const q = new URLSearchParams();
      if (range.value === "custom") {
        q.set("start", $("#usage-start").value || daysAgo(29));
        q.set("end", $("#usage-end").value || daysAgo(0));
      } else {
        q.set("start", daysAgo(Number(range.value) - 1));
        q.set("end", daysAgo(0));
      }
      return q;
    }

    function groupName(row, names) {
      const by = group.value;
      const value = row.group[by];
      if (value === null || value === undefined || value === "") return t("usage.none");
      if (by === "api_key_id") {
        const k = names.api_keys[value];
        return k ? `${k.name} (${k.redacted})` : value;
      }
      if (by === "project_id") return (names.projects[value] || {}).name || value;
      return value;
    }

    async function load() {
      hide(error);
      const q = query();
      const grouped = new URLSearchParams(q);
      grouped.set("group_by", group.value);
      const [series, summary] = await Promise.all([
        api("GET", `${base}/series?width=1d&${q}`),
        api("GET", `${base}/summary?${grouped}`),
      ]);
      $("#usage-csv").href = `${base}/export.csv?width=1d&${grouped}`;
      const total = summary.total;
      $("#usage-cost").textContent = fmtUsd(total.cost_usd);
      $("#usage-requests").textContent = num.format(total.requests);
      $("#usage-input").textContent = num.format(total.input_tokens);
      $("#usage-output").textContent = num.format(total.output_tokens);
      $("#usage-foot-cost").textContent = fmtUsd(total.cost_usd);
      $("#usage-foot-requests").textContent = num.format(total.requests);
      $("#usage-foot-input").textContent = num.format(total.input_tokens);
      $("#usage-foot-output").textContent = num.format(total.output_tokens);

      // Charts: every day of the range, zero where nothing was used.
      const byDay = new Map(series.buckets.map((b) => [b.start, b.results[0]]));
      const days = [];
      for (let d = Math.floor(series.start / DAY) * DAY; d < series.end; d += DAY) days.push(d);
      const pick = (f) => days.map((d) => Number((byDay.get(d) || {})[f] || 0));
      barChart($("#chart-cost"), days, [{ values: pick("cost_usd"), cls: "bar-cost",
        label: t("usage.cost") }], (v) => fmtUsd(v));
      barChart($("#chart-tokens"), days, [
        { values: pick("input_tokens"), cls: "bar-input", label: t("usage.input_tokens") },
        { values: pick("output_tokens"), cls: "bar-output", label: t("usage.output_tokens") },
      ], (v) => compact.format(v));

      $("#usage-group-col").textContent = t("usage.by." + group.value);
      const rows = summary.data.slice().sort((a, b) => b.cost_nano_usd - a.cost_nano_usd);
      $("#usage-table tbody").replaceChildren(...rows.map((r) => el("tr", {},
        el("td", {}, groupName(r, summary.names)),
        el("td", { class: "num" }, num.format(r.requests)),
        el("td", { class: "num" }, num.format(r.input_tokens)),
        el("td", { class: "num" }, num.format(r.output_tokens)),
        el("td", { class: "num" }, fmtUsd(r.cost_usd)))));
      $("#usage-empty").hidden = rows.length > 0;
    }

    F.onSubmit(form, async () => { await load(); });
    try { await load(); } catch (err) { show(error, errorText(err)); }

    // --- live --------------------------------------------------------------------------
    const seen = new Set();
    const liveBody = $("#live-table tbody");
    const state = $("#live-state");
    let lastId = null;
    let reload = null;
    function addLive(r, fresh) {
      if (seen.has(r.id)) return;
      seen.add(r.id);
      lastId = Math.max(lastId || 0, r.id);
      const key = r.api_key ? (r.api_key.name || r.api_key.redacted || r.api_key.id) : "";
      const ok = r.status === "ok";
      const row = el("tr", { "data-request-id": r.request_id },
        el("td", {}, F.fmtDate(r.settled_at)),
        el("td", {}, r.model),
        el("td", {}, key),
        el("td", { class: "num" }, num.format(r.input_tokens)),
        el("td", { class: "num" }, num.format(r.output_tokens)),
        el("td", { class: "num cost" }, fmtUsd(r.cost_usd)),
        el("td", {}, el("span", { class: "pill " + (ok ? "pill-active" : "pill-revoked"),
          title: r.status }, t(ok ? "usage.status.ok" : "usage.status.failed"))));
      // Newest first; a backlog arrives oldest first, so each goes to the top too.
      liveBody.prepend(row);
      while (liveBody.children.length > 100) liveBody.lastElementChild.remove();
      $("#live-empty").hidden = true;
      if (fresh) row.classList.add("fresh");
      // The totals and charts read the rollups, a moment behind the live feed: refresh them
      // shortly after a record arrives, and once more in case the rollup was late.
      clearTimeout(reload);
      reload = setTimeout(() => {
        load().catch(() => {});
        reload = setTimeout(() => load().catch(() => {}), 4000);
      }, 1200);
    }
    let backlogDone = false;
    function poll() {
      state.textContent = t("usage.live_polling");
      const tick = async () => {
        try {
          const q = lastId ? `after=${lastId}&limit=200` : "limit=20";
          const got = await api("GET", `${base}/recent?${q}`);
          const fresh = lastId !== null;
          (lastId ? got.data : got.data.slice().reverse()).forEach((r) => addLive(r, fresh));
          if (got.last_id) lastId = Math.max(lastId || 0, got.last_id);
        } catch (_) { /* try again next tick */ }
      };
      tick();
      setInterval(tick, 2000);
    }
    if (!window.EventSource) { poll(); return; }
    const source = new EventSource(`${base}/live?backlog=20`);
    let failures = 0;
    source.addEventListener("open", () => {
      failures = 0;
      state.textContent = t("usage.live_on");
      state.classList.add("pill-active");
      setTimeout(() => { backlogDone = true; }, 500);
    });
    source.addEventListener("usage", (e) => {
      try { addLive(JSON.parse(e.data), backlogDone); } catch (_) { /* skip a bad event */ }
    });
    source.addEventListener("end", () => { source.close(); poll(); });
    source.addEventListener("error", () => {
      state.classList.remove("pill-active");
      state.textContent = t("usage.live_connecting");
      failures += 1;
      if (failures >= 3) { source.close(); poll(); }
    });
  };
})();
