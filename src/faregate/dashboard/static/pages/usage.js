/* The Usage page: totals, two bar charts (uPlot, vendored in static/vendor/), a grouped
   table, CSV export, and a live feed of requests as they are billed (Server-Sent Events,
   falling back to polling /recent). Costs keep every digit of a fraction of a cent. */
"use strict";
(() => {
  const F = window.faregate;
  const { t, $, el, api, fmtUsd, show, hide, errorText, LANG } = F;
  const DAY = 86400;
  const HEIGHT = 200;
  const num = new Intl.NumberFormat(LANG);
  const compact = new Intl.NumberFormat(LANG, { notation: "compact", maximumFractionDigits: 1 });
  const dayFmt = new Intl.DateTimeFormat(LANG, { month: "short", day: "numeric",
    timeZone: "UTC" });

  function isoDay(date) { return date.toISOString().slice(0, 10); }
  function daysAgo(n) { return isoDay(new Date(Date.now() - n * DAY * 1000)); }
  function dayLabel(posix) { return dayFmt.format(new Date(posix * 1000)); }
  // An axis tick in dollars: fmtUsd keeps the digits of the decimal string it is given.
  function usdTick(v) { return fmtUsd(Number(v.toPrecision(6)).toFixed(9)); }

  // A bar chart of one value per UTC day (uPlot draws on a canvas). The legend shows the
  // hovered day's values, or the whole range's totals: `defs`: [{label, color, align}];
  // `legend(series, index)` with index null for the total.
  function barChart(box, defs, tick, legend) {
    const U = window.uPlot;
    const width = () => Math.max(200, box.clientWidth);
    const opts = {
      width: width(), height: HEIGHT,
      tzDate: (ts) => U.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: {
        // Half a day either side, so the first and last bars are whole (even for one day).
        x: { time: true, range: (u, min, max) => {
          const xs = u.data[0];
          return xs.length ? [xs[0] - DAY / 2, xs[xs.length - 1] + DAY / 2] : [min, max];
        } },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: "#5b6472", grid: { show: false }, ticks: { show: false }, space: 64,
          incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY],
          values: (u, splits) => splits.map(dayLabel) },
        { stroke: "#5b6472", grid: { stroke: "#eceef2" }, ticks: { show: false },
          filter: (u, splits) => splits.map((v) => (v > 0 ? v : null)),  // bars start at 0
          values: (u, splits) => splits.map((v) => (v == null ? "" : tick(v))),
          size: (u, values) => 16 + 7 * Math.max(2, ...(values || []).map((v) => v.length)) },
      ],
      series: [
        { label: t("usage.col.day"), value: (u, v) => {
          if (v != null) return dayLabel(v);
          const xs = u.data[0];
          if (xs.length < 2) return xs.length ? dayLabel(xs[0]) : "–";
          return `${dayLabel(xs[0])} – ${dayLabel(xs[xs.length - 1])}`;
        } },
        ...defs.map((d, i) => ({
          label: d.label, fill: d.color, stroke: d.color, width: 0, points: { show: false },
          paths: U.paths.bars({ size: [defs.length > 1 ? 0.4 : 0.7, 48], align: d.align || 0 }),
          value: (u, v, si, idx) => (u.data[0].length ? legend(i, idx) : "–"),
        })),
      ],
    };
    const chart = new U(opts, [[], ...defs.map(() => [])], box);
    if (window.ResizeObserver) {
      new ResizeObserver(() => {
        if (width() !== chart.width) chart.setSize({ width: width(), height: HEIGHT });
      }).observe(box);
    }
    return chart;
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
    let costs = [];  // per day, decimal strings: the legend shows them exactly
    let tokens = [[], []];
    let total = null;
    const costChart = barChart($("#chart-cost"), [{ label: t("usage.cost"), color: "#2f6fde" }],
      usdTick, (i, idx) => fmtUsd(idx == null ? total.cost_usd : costs[idx]));
    const tokenChart = barChart($("#chart-tokens"), [
      { label: t("usage.input_tokens"), color: "#7aa5ef", align: -1 },
      { label: t("usage.output_tokens"), color: "#1f4fa8", align: 1 },
    ], (v) => compact.format(v), (i, idx) => num.format(idx != null ? tokens[i][idx]
      : total[i ? "output_tokens" : "input_tokens"]));
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
      total = summary.total;
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
      const pick = (f) => days.map((d) => (byDay.get(d) || {})[f] || 0);
      costs = pick("cost_usd");
      tokens = [pick("input_tokens").map(Number), pick("output_tokens").map(Number)];
      const [input, output] = tokens;
      costChart.setData([days, costs.map(Number)]);
      tokenChart.setData([days, input, output]);
      costChart.setLegend();  // the totals, unless a day is hovered
      tokenChart.setLegend();
      $("#chart-cost-empty").hidden = costs.some((c) => Number(c) > 0);
      $("#chart-tokens-empty").hidden = input.some((v) => v > 0) || output.some((v) => v > 0);

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
