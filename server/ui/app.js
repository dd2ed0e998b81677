// The bucketd dashboard. It polls the JSON API every second:
//   /v1/policies  counts per policy (open), from which it computes rates;
//   /v1/status    live buckets, memory, persistence (admin);
//   /v1/top       the keys refused most (admin);
// and peeks a key's buckets on request (/v1/buckets/{key}?policy=...).
// The admin token, when the server asks for one (401), is typed into a
// form and kept in sessionStorage only. Keys come from clients: they are
// only ever written with textContent, never parsed as HTML.
"use strict";

(function () {
  const POLL_MS = 1000;
  const HISTORY = 300; // samples kept: 5 minutes at one a second
  const TOKEN_KEY = "bucketd-admin-token";
  const CELL = "cl.throttle";

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || "";
  let polls = 0;

  class AuthError extends Error {}

  async function api(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const r = await fetch(path, { headers, cache: "no-store" });
    if (r.status === 401) {
      throw new AuthError(token ? "the admin token was refused" : "the admin token is needed");
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
    return body;
  }

  // --- the admin token -----------------------------------------------
  function askToken(err) {
    $("token-section").hidden = false;
    $("token-error").textContent = token ? err.message + ": enter it again." : "";
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-section").hidden = true;
    poll();
  });

  // --- formatting ----------------------------------------------------
  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + units[i];
  }
  function duration(s) {
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.floor(s % 60) + " s";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
  }
  // tokens shows an amount of tokens to two decimals, rounded down: a
  // bucket that shows 1 has a whole token.
  function tokens(x) { return String(Math.floor(Number(x) * 100) / 100); }
  function rate(x) { return x == null ? "–" : x < 10 ? x.toFixed(1) : Math.round(x).toString(); }
  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }
  function tag(td, text) {
    const s = document.createElement("span");
    s.className = "tag";
    s.textContent = text;
    td.appendChild(s);
  }

  // --- rates and charts ----------------------------------------------
  // history.t: sample times (s); history.allowed/limited: name -> rates.
  const history = { t: [], allowed: new Map(), limited: new Map() };
  let last = null; // the previous sample: {t, counts: Map name -> {allowed, denied}}
  const charts = { allowed: null, limited: null };
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

  function sample(t, counts) {
    const rates = new Map();
    if (last) {
      const dt = t - last.t;
      for (const [name, c] of counts) {
        const p = last.counts.get(name);
        if (p && dt > 0) {
          rates.set(name, {
            allowed: Math.max(0, c.allowed - p.allowed) / dt,
            denied: Math.max(0, c.denied - p.denied) / dt,
          });
        }
      }
      history.t.push(t);
      for (const name of counts.keys()) {
        for (const kind of ["allowed", "limited"]) {
          if (!history[kind].has(name)) history[kind].set(name, new Array(history.t.length - 1).fill(null));
        }
      }
      for (const kind of ["allowed", "limited"]) {
        for (const [name, ys] of history[kind]) {
          const r = rates.get(name);
          ys.push(r ? (kind === "allowed" ? r.allowed : r.denied) : null);
        }
      }
      if (history.t.length > HISTORY) {
        history.t.shift();
        for (const kind of ["allowed", "limited"]) for (const ys of history[kind].values()) ys.shift();
      }
    }
    last = { t, counts };
    return rates;
  }

  function drawChart(kind) {
    const el = $("chart-" + kind);
    const names = [...history[kind].keys()];
    const data = [history.t, ...names.map((n) => history[kind].get(n))];
    let u = charts[kind];
    const width = Math.max(280, el.clientWidth || 600);
    if (!u || u._names !== names.join("\n")) {
      if (u) u.destroy();
      u = new uPlot({
        width,
        height: 220,
        scales: { x: { time: true }, y: { range: (_, min, max) => [0, Math.max(1, max)] } },
        axes: [{}, { label: "takes/s", size: 60 }],
        series: [{}, ...names.map((n, i) => ({ label: n, stroke: palette[i % palette.length], width: 2, spanGaps: false }))],
      }, data, el);
      u._names = names.join("\n");
      charts[kind] = u;
    } else {
      if (u.width !== width) u.setSize({ width, height: 220 });
      u.setData(data);
    }
  }

  // --- rendering -----------------------------------------------------
  function renderPolicies(list, rates, shadow) {
    const tb = $("policies").tBodies[0];
    tb.replaceChildren();
    for (const p of list) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = p.name;
      if (p.default) tag(th, "default");
      if (shadow.has(p.name)) tag(th, "shadow");
      if (p.name === CELL && p.cell) tag(th, "CL.THROTTLE");
      tr.appendChild(th);
      cell(tr, p.counts.allowed.toString(), "n");
      cell(tr, p.counts.denied.toString(), "n");
      const r = rates.get(p.name);
      cell(tr, rate(r && r.allowed), "n");
      cell(tr, rate(r && r.denied), "n");
      tr.dataset.policy = p.name;
      tb.appendChild(tr);
    }
  }

  function renderStatus(st) {
    $("st-buckets").textContent = st.live_buckets.toLocaleString("en");
    $("st-heap").textContent = bytes(st.memory.heap_bytes);
    $("st-rss").textContent = st.memory.rss_bytes ? bytes(st.memory.rss_bytes) : "unknown";
    const ok = st.persistence.healthy;
    $("st-persist").textContent = ok ? "healthy" : "failing: " + st.persistence.error;
    $("st-persist").classList.toggle("bad", !ok);
    $("st-save").textContent = st.persistence.last_save && !st.persistence.last_save.startsWith("0001")
      ? duration(st.persistence.last_save_age_seconds) + " ago" : "never";
    $("st-evict").textContent = st.evictions.toLocaleString("en");
    $("st-uptime").textContent = duration(st.uptime_seconds);
    $("st-version").textContent = st.version + " (" + st.go_version + ")";
  }

  function renderTop(top) {
    const tb = $("top").tBodies[0];
    tb.replaceChildren();
    for (const e of top.keys) {
      const tr = document.createElement("tr");
      cell(tr, e.key, "key");
      const td = cell(tr, e.policy);
      if (e.cell) tag(td, "CL.THROTTLE");
      cell(tr, e.count.toString(), "n");
      cell(tr, e.error.toString(), "n");
      tb.appendChild(tr);
    }
    $("top-empty").hidden = top.keys.length > 0;
  }

  function setConn(text, bad) {
    $("conn").textContent = text;
    $("conn").classList.toggle("bad", !!bad);
  }

  // --- polling -------------------------------------------------------
  let policyNames = [];
  let timer = null;
  let polling = false; // a poll is in flight
  let again = false; // poll once more as soon as it ends

  // poll runs one poll now, unless one is in flight (then once more when it
  // ends), and schedules the next: there is only ever one loop of polls.
  async function poll() {
    if (polling) {
      again = true;
      return;
    }
    polling = true;
    clearTimeout(timer);
    try {
      await pollOnce();
    } finally {
      polling = false;
      if (again) {
        again = false;
        poll();
      } else {
        timer = setTimeout(poll, POLL_MS);
      }
    }
  }

  async function pollOnce() {
    const t = Date.now() / 1000;
    try {
      const pol = await api("/v1/policies");
      policyNames = pol.policies.map((p) => p.name);
      const shadow = new Set(pol.policies.filter((p) => p.shadow).map((p) => p.name));
      const rows = pol.policies.slice();
      let status = null, top = null, authErr = null;
      try {
        [status, top] = await Promise.all([
          api("/v1/status"),
          api("/v1/top?window=" + encodeURIComponent($("top-window").value) + "&limit=20"),
        ]);
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
        authErr = err;
      }
      if (status) {
        rows.push({ name: CELL, cell: true, counts: status.cl_throttle });
        renderStatus(status);
      }
      const counts = new Map(rows.map((p) => [p.name, { allowed: p.counts.allowed, denied: p.counts.denied }]));
      const rates = sample(t, counts);
      renderPolicies(rows, rates, shadow);
      drawChart("allowed");
      drawChart("limited");
      if (top) renderTop(top);
      if (authErr) {
        askToken(authErr);
        setConn("Connected; " + authErr.message + " for the status and the limited keys.", true);
      } else {
        $("token-section").hidden = true;
        setConn("Live: updated " + new Date(t * 1000).toLocaleTimeString("en-GB") + ".");
      }
      polls++;
      document.documentElement.dataset.polls = String(polls);
    } catch (err) {
      setConn("Cannot reach bucketd: " + err.message + ". Retrying…", true);
    }
  }

  // --- lookup --------------------------------------------------------
  $("lookup-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("lookup-key").value;
    $("lookup-error").textContent = "";
    const tb = $("lookup").tBodies[0];
    tb.replaceChildren();
    try {
      const results = await Promise.all(policyNames.map((name) =>
        api("/v1/buckets/" + encodeURIComponent(key) + "?policy=" + encodeURIComponent(name))));
      for (const d of results) {
        const tr = document.createElement("tr");
        const th = document.createElement("th");
        th.scope = "row";
        th.textContent = d.policy;
        if (d.shadow) tag(th, "shadow");
        tr.appendChild(th);
        cell(tr, tokens(d.remaining), "n");
        cell(tr, tokens(d.limit), "n");
        cell(tr, d.reset_after_ms ? duration(d.reset_after_ms / 1000) : "full", "n");
        cell(tr, d.limits.map((l) => tokens(l.remaining) + " of " + l.capacity + " at " + l.rate).join("; "));
        tb.appendChild(tr);
      }
      $("lookup-cap").textContent = "The buckets of " + JSON.stringify(key) + " now";
      $("lookup").hidden = false;
    } catch (err) {
      $("lookup").hidden = true;
      $("lookup-error").textContent = "Lookup failed: " + err.message;
    }
  });

  $("top-window").addEventListener("change", poll);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { drawChart("allowed"); drawChart("limited"); }, 200);
  });
  poll();
})();
