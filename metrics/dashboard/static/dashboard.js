"use strict";
// The dashboard page: polls the JSON API, renders tiles, trend, drill-down and the overdue
// backlog. Plain DOM, no framework and nothing fetched from outside the deployment, so the page
// works on an air-gapped provincial network.
(() => {
  const I18N = window.MOTCUA_I18N;
  const COUNT_KPIS = ["received", "resolved", "returned", "overdue_open"];
  const TILE_ORDER = [
    "online_share", "full_online_share", "online_resolution_share", "e_transfer_rate",
    "e_transfer_case_rate", "online_payment_rate", "postal_intake_share",
    "postal_return_share", "on_time_rate", "digitisation_rate", "satisfaction_rate",
    "mean_resolution_days",
  ];
  const DRILL_KPIS = ["received", "online_share", "on_time_rate", "digitisation_rate",
                      "overdue_open"];
  const PAGE = 10;
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const savedLang = (() => {
    try { return localStorage.getItem("motcua.lang"); } catch { return null; }
  })();
  const pick = (v, allowed, fallback) => (allowed.includes(v) ? v : fallback);

  const state = {
    lang: pick(params.get("lang"), ["vi", "en"], savedLang === "en" ? "en" : "vi"),
    scope: params.get("scope") || "all",
    period: params.get("period") || "", // "": the server's current month, and follow it
    trendKpi: params.get("kpi") || "online_share",
    intake: (params.get("intake") ?? document.body.dataset.intakeUrl ?? "").replace(/\/+$/, ""),
    refresh: Math.max(1, Number(params.get("refresh")) || Number(document.body.dataset.refresh) || 5),
    overdueOffset: 0,
    currentMonth: null,
    names: new Map(), // agency code → name, "province:H56" → {kind, name}
    procedures: new Map(),
    namesFailed: false,
    data: null,
    failure: null,
    updatedAt: null,
    cycles: 0,
    generation: 0,
    timer: null,
  };

  // ---- text and numbers ---------------------------------------------------------------
  const t = (key, vars = {}) => {
    let s = I18N[state.lang].text[key] ?? I18N.vi.text[key] ?? key;
    for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
    return s;
  };
  const kpiLabel = (k) => I18N[state.lang].kpis[k] ?? k;

  // Formatting is done here, not by Intl, so figures read the same on every browser:
  // Vietnamese groups thousands with "." and uses "," for decimals.
  function fmtNumber(x, decimals) {
    const vi = state.lang === "vi";
    const [int, frac] = Math.abs(x).toFixed(decimals).split(".");
    const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, vi ? "." : ",");
    const body = frac ? `${grouped}${vi ? "," : "."}${frac}` : grouped;
    return x < 0 && /[1-9]/.test(body) ? `−${body}` : body;
  }
  function fmtValue(unit, v) {
    if (v === null || v === undefined) return "—";
    if (unit === "ratio") return `${fmtNumber(v * 100, 1)}%`;
    if (unit === "days") return `${fmtNumber(v, 1)} ${t("days")}`;
    return fmtNumber(v, 0);
  }
  function fmtGap(unit, g) {
    if (g === null || g === undefined) return "—";
    const sign = g > 0 ? "+" : g < 0 ? "−" : "±";
    if (unit === "ratio") return `${sign}${fmtNumber(Math.abs(g) * 100, 1)} ${t("pp")}`;
    if (unit === "days") return `${sign}${fmtNumber(Math.abs(g), 1)} ${t("days")}`;
    return `${sign}${fmtNumber(Math.abs(g), 0)}`;
  }
  function fmtFraction(item) {
    if (item.denominator === null || item.denominator === undefined) return "";
    const [num, den] = [fmtNumber(item.numerator, 0), fmtNumber(item.denominator, 0)];
    // A mean's numerator is a sum of days, not a count of cases: say so.
    return item.unit === "days" ? `${num} ${t("days")} / ${den} ${t("cases")}` : `${num} / ${den}`;
  }

  function periodLabel(p) {
    const [year, second, day] = p.split("-");
    const names = I18N[state.lang].text.monthNames;
    const monthName = (m) => (names ? names[Number(m) - 1] : m);
    if (!second) return t("year", { year });
    if (second.startsWith("Q")) return t("quarter", { quarter: second.slice(1), year });
    if (!day) return t("month", { month: second, monthName: monthName(second), year });
    return t("day", { day, month: second, monthName: monthName(second), year });
  }
  const shortMonth = (m) => `${m.slice(5, 7)}/${m.slice(0, 4)}`;
  function fmtDate(iso) {
    const [y, m, d] = iso.split("-");
    return state.lang === "vi" ? `${d}/${m}/${y}` : iso;
  }

  // ---- names: from intake's registry; codes when it cannot be reached ------------------
  function scopeLabel(scope) {
    if (scope === "all") return t("all");
    const [kind, code] = scope.split(":");
    if (kind === "province") {
      const p = state.names.get(scope);
      if (!p) return code;
      return state.lang === "vi"
        ? `${p.kind[0].toUpperCase()}${p.kind.slice(1)} ${p.name}`
        : `${p.name}${p.kind === "tỉnh" ? " province" : " city"}`;
    }
    if (kind === "agency") return state.names.get(code) ?? code;
    return scope;
  }

  // ---- credentials: a portal token (docs/security.md) -----------------------------------
  // From the address's #token=… (taken out of the address at once) or this tab's session;
  // when the API answers 401, the page asks for a client id and secret and gets a new one.
  const TOKEN_KEY = "motcua.token";
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) history.replaceState(null, "", location.pathname + location.search);
  let token = given || (() => {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
  })();
  const keepToken = (value) => {
    token = value;
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* private mode */ }
  };
  if (given) keepToken(given);
  let signingIn = null;
  function signIn() {
    signingIn ??= (async () => {
      const id = prompt("Mã ứng dụng cổng thông tin / Portal client id");
      const secret = id && prompt("Khóa bí mật / Client secret");
      if (!id || !secret) return false;
      const r = await fetch(`${state.intake}/v1/auth/token`, {
        method: "POST", body: "grant_type=client_credentials",
        headers: { "content-type": "application/x-www-form-urlencoded",
                   authorization: `Basic ${btoa(`${id}:${secret}`)}` },
      });
      if (r.ok) keepToken((await r.json()).access_token);
      return r.ok;
    })().finally(() => { signingIn = null; });
    return signingIn;
  }

  async function getJSON(url, timeoutMs = 15000, retried = false) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), timeoutMs);
    try {
      const headers = { accept: "application/json" };
      if (token) headers.authorization = `Bearer ${token}`;
      const r = await fetch(url, { headers, signal: ctl.signal });
      if (r.status === 401 && !retried && await signIn()) return getJSON(url, timeoutMs, true);
      if (!r.ok) throw new Error(`${r.status} ${r.statusText} (${url})`);
      return await r.json();
    } finally {
      clearTimeout(timer);
    }
  }

  async function allPages(url) {
    const out = [];
    for (let offset = 0; offset < 50000; offset += 1000) {
      const page = await getJSON(`${url}?limit=1000&offset=${offset}`, 5000);
      out.push(...page.items);
      if (!page.items.length || offset + page.items.length >= page.total) break;
    }
    return out;
  }

  async function loadNames() {
    try {
      const [agencies, procedures] = await Promise.all([
        allPages(`${state.intake}/v1/agencies`), allPages(`${state.intake}/v1/procedures`),
      ]);
      for (const a of agencies) {
        state.names.set(a.code, a.name);
        // 000.00.00.Hxx is the provincial People's Committee: its name names the province.
        const m = a.code === `000.00.00.${a.province}` &&
          /^(?:Ủy ban nhân dân|UBND)\s+(tỉnh|thành phố)\s+(.+)$/iu.exec(a.name.normalize("NFC"));
        if (m) state.names.set(`province:${a.province}`, { kind: m[1].toLowerCase(), name: m[2] });
      }
      for (const p of procedures) state.procedures.set(p.code, p.name);
      state.namesFailed = false;
    } catch {
      // The three-process deployment may have intake elsewhere (or behind no CORS): the
      // dashboard still works, with codes for names.
      state.namesFailed = true;
    }
    render();
  }

  // ---- polling ------------------------------------------------------------------------
  function lastMonthOf(period) {
    const [y, second] = period.split("-");
    if (!second) return `${y}-12`;
    if (second.startsWith("Q")) return `${y}-${String(Number(second.slice(1)) * 3).padStart(2, "0")}`;
    return `${y}-${second}`;
  }
  function monthsEndingAt(end, n) {
    let [y, m] = end.split("-").map(Number);
    const out = [];
    for (let i = 0; i < n; i++) {
      out.unshift(`${y}-${String(m).padStart(2, "0")}`);
      if (--m === 0) { m = 12; y--; }
    }
    return out;
  }

  // Past months change only through late facts (a result digitised after the month closed):
  // they are re-read every dozen cycles, the latest month on every cycle.
  const trendCache = new Map();
  async function trendPoint(scope, kpi, month, latest) {
    const key = `${scope}|${kpi}|${month}`;
    const cached = trendCache.get(key);
    if (cached && !latest && state.cycles - cached.cycle < 12) return cached.point;
    const answer = await getJSON(`/v1/kpis?${new URLSearchParams({ scope, period: month, kpi })}`);
    const point = { period: month, item: answer.items[0] };
    if (trendCache.size > 1000) trendCache.clear();
    trendCache.set(key, { cycle: state.cycles, point });
    return point;
  }

  async function refresh() {
    const generation = ++state.generation;
    clearTimeout(state.timer);
    const { scope, period, overdueOffset } = state;
    let { trendKpi } = state;
    try {
      if (!state.currentMonth && period) {
        state.currentMonth = (await getJSON("/v1/kpis?kpi=received")).period;
      }
      const q = new URLSearchParams({ scope });
      if (period) q.set("period", period);
      const kpis = await getJSON(`/v1/kpis?${q}`);
      if (!period) state.currentMonth = kpis.period;
      if (!kpis.items.some((i) => i.kpi === trendKpi && i.kpi !== "overdue_open")) {
        trendKpi = state.trendKpi = "online_share"; // a stale or mistyped ?kpi= in the URL
      }
      let end = lastMonthOf(kpis.period);
      if (state.currentMonth && end > state.currentMonth) end = state.currentMonth;
      const drillable = scope === "all" || scope.startsWith("province:");
      const bq = new URLSearchParams({ scope, period: kpis.period });
      for (const k of DRILL_KPIS) bq.append("kpi", k);
      const [trend, breakdown, overdue] = await Promise.all([
        Promise.all(monthsEndingAt(end, 12).map((m) => trendPoint(scope, trendKpi, m, m === end))),
        drillable ? getJSON(`/v1/breakdown?${bq}`) : Promise.resolve(null),
        getJSON(`/v1/overdue?${new URLSearchParams({ scope, limit: PAGE, offset: overdueOffset })}`),
      ]);
      if (generation !== state.generation) return; // the user moved on meanwhile
      state.data = { kpis, trend, trendKpi, breakdown, overdue };
      state.failure = null;
      state.updatedAt = new Date();
      state.cycles += 1;
      if (state.namesFailed && state.cycles % 12 === 0) loadNames();
    } catch (e) {
      if (generation !== state.generation) return;
      state.failure = e instanceof Error ? e.message : String(e);
    }
    render();
    state.timer = setTimeout(() => {
      if (document.hidden) { state.timer = setTimeout(refresh, 1000); return; }
      refresh();
    }, state.refresh * 1000);
  }

  function syncUrl(push) {
    const q = new URLSearchParams(location.search);
    const set = (k, v, dflt) => (v && v !== dflt ? q.set(k, v) : q.delete(k));
    set("scope", state.scope, "all");
    set("period", state.period, "");
    set("kpi", state.trendKpi, "online_share");
    set("lang", state.lang, "vi");
    const url = `${location.pathname}${q.size ? `?${q}` : ""}`;
    history[push ? "pushState" : "replaceState"](null, "", url);
  }

  function drill(scope) {
    state.scope = scope;
    state.overdueOffset = 0;
    syncUrl(true);
    renderCrumbs();
    refresh();
  }

  // ---- rendering ----------------------------------------------------------------------
  function h(tag, props = {}, ...children) {
    const el = tag.startsWith("svg:")
      ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.setAttribute("class", v);
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  function render() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    for (const el of document.querySelectorAll("[data-kpi-label]")) {
      el.textContent = I18N[state.lang].short[el.dataset.kpiLabel] ?? kpiLabel(el.dataset.kpiLabel);
      el.title = kpiLabel(el.dataset.kpiLabel);
    }
    for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === state.lang));
    document.querySelector(".lang").setAttribute("aria-label", t("languageGroup"));
    $("crumbs").setAttribute("aria-label", t("scopeNav"));
    renderCrumbs();
    renderLive();
    renderNotice();
    if (!state.data) return;
    renderPeriods();
    renderTiles();
    renderTrend();
    renderDrill();
    renderOverdue();
    document.body.dataset.scope = state.data.kpis.scope;
    document.body.dataset.period = state.data.kpis.period;
    document.body.dataset.cycles = String(state.cycles);
  }

  function renderCrumbs() {
    const chain = ["all"];
    if (state.scope.startsWith("agency:")) chain.push(`province:${state.scope.split(".").pop()}`);
    if (state.scope !== "all") chain.push(state.scope);
    $("crumbs").replaceChildren(...chain.map((s, i) => h("li", {},
      i === chain.length - 1
        ? h("span", { "aria-current": "page", dataset: { scope: s }, text: scopeLabel(s) })
        : h("button", { type: "button", class: "link", dataset: { scope: s },
                        onclick: () => drill(s), text: scopeLabel(s) }))));
  }

  function renderLive() {
    const live = $("live");
    if (state.failure) {
      live.dataset.state = "offline";
      $("live-text").textContent = t("offline", { seconds: state.refresh });
    } else if (state.updatedAt) {
      live.dataset.state = "live";
      const time = state.updatedAt.toLocaleTimeString("en-GB", { timeZone: "Asia/Ho_Chi_Minh", hour12: false });
      $("live-text").textContent = t("live", { time });
    }
  }

  function renderNotice() {
    const notes = [];
    if (state.failure) notes.push(t("loadFailed", { error: state.failure }));
    if (state.namesFailed) notes.push(t("namesUnavailable", { url: state.intake || location.origin }));
    $("notice").hidden = !notes.length;
    $("notice").textContent = notes.join(" ");
  }

  function renderPeriods() {
    const select = $("period");
    const current = state.currentMonth;
    if (!current) return;
    const year = Number(current.slice(0, 4));
    const quarter = Math.floor((Number(current.slice(5, 7)) - 1) / 3) + 1;
    const months = monthsEndingAt(current, 24).reverse();
    const quarters = [];
    for (let y = year; y >= year - 1; y--) {
      for (let q = y === year ? quarter : 4; q >= 1; q--) quarters.push(`${y}-Q${q}`);
    }
    const shown = state.data.kpis.period;
    const opts = (list) => list.map((p) => h("option", { value: p, selected: p === shown, text: periodLabel(p) }));
    const groups = [
      h("optgroup", { label: state.lang === "vi" ? "Tháng" : "Month" }, opts(months)),
      h("optgroup", { label: state.lang === "vi" ? "Quý" : "Quarter" }, opts(quarters)),
      h("optgroup", { label: state.lang === "vi" ? "Năm" : "Year" }, opts([`${year}`, `${year - 1}`])),
    ];
    if (![...months, ...quarters, `${year}`, `${year - 1}`].includes(shown)) {
      groups.unshift(h("option", { value: shown, selected: true, text: periodLabel(shown) }));
    }
    select.replaceChildren(...groups);
  }

  function selectTrend(kpi) {
    if (kpi === "overdue_open") return; // a live count: it has no monthly history
    state.trendKpi = kpi;
    syncUrl(false);
    renderTiles();
    refresh();
  }

  const COMPARISONS = { ">=": "≥ ", ">": "> " };
  function fmtTarget(item) {
    if (item.target === null || item.target === undefined) return "—";
    return `${COMPARISONS[item.comparison] ?? ""}${fmtValue(item.unit, item.target)}`;
  }

  function planRows(item) {
    return h("dl", { class: "plan" },
      h("div", {}, h("dt", { text: t("target") }),
        h("dd", { class: "tile-target", title: item.plan?.document ?? null, text: fmtTarget(item) })),
      h("div", {}, h("dt", { text: t("gap") }),
        h("dd", { class: `tile-gap${item.gap < 0 ? " negative" : item.gap > 0 ? " positive" : ""}`,
                  text: fmtGap(item.unit, item.gap) })));
  }

  function badge(item) {
    if (item.status !== "met" && item.status !== "behind") return null;
    return h("span", { class: `badge ${item.status}`, text: t(item.status) });
  }

  function tile(item, big) {
    const selectable = item.kpi !== "overdue_open";
    const selected = item.kpi === state.trendKpi;
    const attrs = {
      class: `${big ? "count" : "tile"}${selected ? " selected" : ""}${item.status ? ` ${item.status}` : ""}`,
      dataset: { kpi: item.kpi },
      tabindex: selectable ? 0 : null,
      role: selectable ? "button" : null,
      "aria-pressed": selectable ? String(selected) : null,
      onclick: () => selectTrend(item.kpi),
      onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); selectTrend(item.kpi); } },
    };
    const value = h("div", { class: "tile-value", text: fmtValue(item.unit, item.value) });
    const fraction = h("div", { class: "tile-fraction", text: fmtFraction(item) });
    if (big) {
      const note = item.kpi === "overdue_open" ? h("div", { class: "tile-note", text: state.lang === "vi" ? "hiện tại" : "now" }) : null;
      const hasPlan = item.target !== undefined && item.target !== null;
      return h("article", attrs, h("h3", { class: "tile-label", text: kpiLabel(item.kpi) }), value, note,
        hasPlan ? planRows(item) : null);
    }
    let bar = null;
    if (item.unit === "ratio") {
      const fill = h("span", { class: "bar-fill" });
      fill.style.width = `${Math.max(0, Math.min(1, item.value ?? 0)) * 100}%`;
      const marker = item.target !== undefined && item.target !== null ? h("span", { class: "bar-target", title: `${t("target")}: ${fmtTarget(item)}` }) : null;
      if (marker) marker.style.left = `${Math.max(0, Math.min(1, item.target)) * 100}%`;
      bar = h("div", { class: "bar", "aria-hidden": "true" }, fill, marker);
    }
    return h("article", attrs,
      h("div", { class: "tile-head" }, h("h3", { class: "tile-label", text: kpiLabel(item.kpi) }), badge(item)),
      h("div", { class: "tile-figures" }, value, fraction), bar, planRows(item));
  }

  function renderTiles() {
    if (!state.data) return;
    const byKpi = new Map(state.data.kpis.items.map((i) => [i.kpi, i]));
    $("counts").replaceChildren(...COUNT_KPIS.filter((k) => byKpi.has(k)).map((k) => tile(byKpi.get(k), true)));
    const rest = [...TILE_ORDER.filter((k) => byKpi.has(k)),
                  ...[...byKpi.keys()].filter((k) => !COUNT_KPIS.includes(k) && !TILE_ORDER.includes(k))];
    $("tiles").replaceChildren(...rest.map((k) => tile(byKpi.get(k), false)));
    $("trend-kpi").textContent = kpiLabel(state.trendKpi);
  }

  function niceMax(x) {
    if (x <= 0) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= x);
  }

  function renderTrend() {
    const { trend, trendKpi } = state.data;
    const W = 640, H = 240, L = 56, R = 16, T = 16, B = 34;
    const unit = trend.find((p) => p.item)?.item.unit ?? "ratio";
    const values = trend.map((p) => p.item?.value ?? null);
    const targets = trend.map((p) => p.item?.target ?? null);
    const top = unit === "ratio" ? 1 : niceMax(Math.max(0, ...values.filter((v) => v !== null), ...targets.filter((v) => v !== null)));
    const x = (i) => L + (i + 0.5) * (W - L - R) / trend.length;
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
                               "aria-label": `${t("trend")}: ${kpiLabel(trendKpi)}`, dataset: { kpi: trendKpi } });
    for (let i = 0; i <= 4; i++) {
      const v = top * i / 4;
      svg.append(h("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: i ? "grid-line" : "axis-line" }),
        h("svg:text", { x: L - 8, y: y(v) + 4, class: "axis-label", "text-anchor": "end", text: unit === "ratio" ? `${fmtNumber(v * 100, 0)}%` : fmtNumber(v, v < 10 && v % 1 ? 1 : 0) }));
    }
    trend.forEach((p, i) => svg.append(h("svg:text", { x: x(i), y: H - 12, class: "axis-label", "text-anchor": "middle", text: shortMonth(p.period) })));
    // Lines break where a month has no value (denominator 0) rather than dropping to zero.
    let run = [];
    const runs = [];
    values.forEach((v, i) => { if (v === null) { if (run.length) runs.push(run); run = []; } else run.push([x(i), y(v)]); });
    if (run.length) runs.push(run);
    for (const r of runs) {
      const pts = r.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ");
      if (r.length > 1) {
        svg.append(h("svg:polygon", { class: "area", points: `${r[0][0].toFixed(1)},${y(0)} ${pts} ${r[r.length - 1][0].toFixed(1)},${y(0)}` }));
      }
      svg.append(h("svg:polyline", { class: "line", points: pts }));
    }
    if (targets.some((v) => v !== null)) {
      const pts = targets.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean).join(" ");
      svg.append(h("svg:polyline", { class: "target-line", points: pts }));
    }
    trend.forEach((p, i) => {
      if (!p.item || p.item.value === null) return;
      const label = `${periodLabel(p.period)}: ${fmtValue(unit, p.item.value)}${p.item.denominator !== null ? ` (${fmtFraction(p.item)})` : ""}`;
      svg.append(h("svg:circle", { cx: x(i), cy: y(p.item.value), r: 4, class: "point",
                                   dataset: { period: p.period, value: p.item.value } },
        h("svg:title", { text: label })));
    });
    const last = [...trend].reverse().find((p) => p.item && p.item.value !== null);
    if (last) {
      const i = trend.indexOf(last);
      svg.append(h("svg:text", { x: Math.min(x(i), W - R - 4), y: y(last.item.value) - 10, class: "value-label", "text-anchor": "end", text: fmtValue(unit, last.item.value) }));
    }
    $("trend").replaceChildren(svg);
  }

  function renderDrill() {
    const card = $("drill-card");
    const b = state.data.breakdown;
    card.hidden = !b;
    if (!b) return;
    $("drill-h").textContent = t(b.by === "province" ? "byProvince" : "byAgency");
    const rows = b.children.map((c) => ({ scope: c.scope, code: c.code, items: new Map(c.items.map((i) => [i.kpi, i])) }));
    rows.sort((a, z) => (z.items.get("received")?.value ?? 0) - (a.items.get("received")?.value ?? 0) || a.code.localeCompare(z.code));
    const body = $("drill").tBodies[0];
    if (!rows.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "empty", text: t("none") })));
      return;
    }
    body.replaceChildren(...rows.map((r) => {
      const name = scopeLabel(r.scope);
      return h("tr", { dataset: { scope: r.scope }, onclick: () => drill(r.scope) },
        h("th", { scope: "row" },
          h("button", { type: "button", class: "link", text: name, onclick: (e) => { e.stopPropagation(); drill(r.scope); } }),
          name !== r.code ? h("div", { class: "code", text: r.code }) : null),
        ...DRILL_KPIS.map((k) => {
          const i = r.items.get(k);
          return h("td", { class: `num${k === "overdue_open" && i?.value ? " alert" : ""}`, dataset: { kpi: k }, text: i ? fmtValue(i.unit, i.value) : "—" });
        }));
    }));
  }

  function renderOverdue() {
    const o = state.data.overdue;
    $("overdue-total").textContent = fmtNumber(o.total, 0);
    const channels = I18N[state.lang].text.channels;
    const body = $("overdue").tBodies[0];
    body.replaceChildren(...(o.items.length ? o.items.map((c) => h("tr", { dataset: { case: c.case_code } },
      h("td", { class: "mono", text: c.case_code }),
      h("td", { class: "clip", title: c.agency_code, text: state.names.get(c.agency_code) ?? c.agency_code }),
      h("td", { class: "clip", title: c.procedure_code, text: state.procedures.get(c.procedure_code) ?? c.procedure_code }),
      h("td", { text: channels[c.channel] ?? c.channel }),
      h("td", { text: fmtDate(c.received_on) })))
      : [h("tr", {}, h("td", { colspan: 5, class: "empty", text: t("noOverdue") }))]));
    const from = o.total ? o.offset + 1 : 0;
    $("overdue-range").textContent = `${fmtNumber(from, 0)}–${fmtNumber(o.offset + o.items.length, 0)} / ${fmtNumber(o.total, 0)}`;
    $("overdue-prev").disabled = o.offset === 0;
    $("overdue-next").disabled = o.offset + o.items.length >= o.total;
  }

  // ---- events -------------------------------------------------------------------------
  for (const b of document.querySelectorAll("[data-lang]")) {
    b.addEventListener("click", () => {
      state.lang = b.dataset.lang;
      try { localStorage.setItem("motcua.lang", state.lang); } catch { /* private mode */ }
      syncUrl(false);
      render();
    });
  }
  $("period").addEventListener("change", (e) => {
    const v = e.target.value;
    state.period = v === state.currentMonth ? "" : v;
    syncUrl(false);
    refresh();
  });
  $("overdue-prev").addEventListener("click", () => { state.overdueOffset = Math.max(0, state.overdueOffset - PAGE); refresh(); });
  $("overdue-next").addEventListener("click", () => { state.overdueOffset += PAGE; refresh(); });
  window.addEventListener("popstate", () => {
    const q = new URLSearchParams(location.search);
    state.scope = q.get("scope") || "all";
    state.period = q.get("period") || "";
    state.overdueOffset = 0;
    refresh();
  });

  render();
  loadNames();
  refresh();
})();
