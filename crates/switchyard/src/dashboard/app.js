// Switchyard dashboard: polls the gateway's JSON API every 2 s and draws it.
//
// What must stay true: no data reaches the page as markup (no HTML strings at all).
// Lane names, models, reasons and upstream error details come from config and from
// upstreams; every one is set with textContent or setAttribute on elements made here.
'use strict';
(() => {
  const POLL_MS = 2000;
  const PALETTE = ['#4f8cff', '#1fb57f', '#f0a020', '#a970ff', '#ef5b5f', '#14b8c4', '#f76b15',
    '#d45ab4', '#8d9bb0', '#6bbf3a'];
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  const state = { lastOk: 0, seen: null, colors: new Map(), timer: 0, series: null, lanes: [] };

  // ---- small DOM helpers -------------------------------------------------------------
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    setProps(e, props);
    for (const c of children) {
      if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }
  function svg(tag, props, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setProps(e, props);
    for (const c of children) if (c) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  function setProps(e, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = String(v);
      else if (k === 'class') e.setAttribute('class', v);
      else e.setAttribute(k, String(v));
    }
  }
  function setText(id, text) { $(id).textContent = text; }

  // ---- formatting --------------------------------------------------------------------
  function num(n) {
    if (n === null || n === undefined) return '–';
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(1) + 'G';
    if (a >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (a >= 1e4) return (n / 1e3).toFixed(0) + 'k';
    if (a >= 1e3) return (n / 1e3).toFixed(1) + 'k';
    return String(Math.round(n));
  }
  function usd(x) {
    if (!x) return '$0';
    return x < 0.01 ? '$' + x.toFixed(4) : '$' + x.toFixed(2);
  }
  function ms(x) {
    if (x === null || x === undefined) return '–';
    return x < 1000 ? Math.round(x) + ' ms' : (x / 1000).toFixed(1) + ' s';
  }
  function clock(t) {
    return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }
  function inTime(delta) {
    if (delta <= 0) return 'now';
    const s = Math.round(delta / 1000);
    if (s < 90) return 'in ' + s + ' s';
    if (s < 5400) return 'in ' + Math.round(s / 60) + ' min';
    if (s < 172800) return 'in ' + Math.round(s / 3600) + ' h';
    return 'in ' + Math.round(s / 86400) + ' d';
  }
  // `local_share` is a fraction (0..1) of requests answered by local lanes.
  function percent(share) {
    return share === null || share === undefined ? '–' : Math.round(share * 100) + '%';
  }
  function color(lane) {
    if (!state.colors.has(lane)) state.colors.set(lane, PALETTE[state.colors.size % PALETTE.length]);
    return state.colors.get(lane);
  }
  function swatch(lane) {
    const s = el('span', { class: 'swatch' });
    s.style.background = color(lane);
    return s;
  }

  // ---- fetching ----------------------------------------------------------------------
  async function getJSON(path) {
    const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
    // Not a reload: if some endpoint refused the cookie, reloading would loop forever.
    if (r.status === 401) throw new Error('the key is no longer accepted (sign out and in again)');
    if (!r.ok) throw new Error(path.split('?')[0] + ' answered HTTP ' + r.status);
    return r.json();
  }

  async function tick() {
    clearTimeout(state.timer);
    if (!document.hidden) {
      // Usage first: the lane cards show each lane's 24-hour numbers.
      const parts = [
        ['usage', '/api/usage?since=24h&by=lane', renderUsage],
        ['status', '/api/status', renderStatus],
        ['series', '/api/series?since=1h&step=60', renderSeries],
        ['requests', '/api/requests?limit=50', renderRequests],
      ];
      const results = await Promise.allSettled(parts.map(([, path]) => getJSON(path)));
      const failed = [];
      results.forEach((r, i) => {
        const [name, , render] = parts[i];
        if (r.status === 'rejected') { failed.push((r.reason && r.reason.message) || name); return; }
        try {
          render(r.value);
        } catch (e) {
          failed.push(name + ': ' + e.message);
          console.error(e);
        }
      });
      if (failed.length === 0) state.lastOk = Date.now();
      $('banner').hidden = failed.length === 0;
      setText('banner-detail', failed.length ? failed.join('; ') + '.' : '');
      showUpdated();
    }
    state.timer = setTimeout(tick, POLL_MS);
  }

  function showUpdated() {
    const u = $('updated');
    if (!state.lastOk) { u.textContent = 'connecting…'; u.className = 'pill'; return; }
    const s = Math.round((Date.now() - state.lastOk) / 1000);
    u.textContent = s < 1 ? 'updated just now' : 'updated ' + s + ' s ago';
    u.className = $('banner').hidden ? 'pill live' : 'pill';
  }

  // ---- header and totals ---------------------------------------------------------------
  function renderUsage(u) {
    const t = u.total || {};
    setText('total-requests', num(t.requests || 0));
    setText('total-errors', (t.ok || 0) + ' ok · ' + (t.errors || 0) + ' failed');
    setText('total-tokens', num(t.tokens_in || 0) + ' / ' + num(t.tokens_out || 0));
    setText('total-tokens-sub', num((t.tokens_in || 0) + (t.tokens_out || 0)) + ' in all');
    setText('total-cost', usd(t.cost_usd || 0));
    setText('total-fallbacks', num(t.fallbacks || 0));
    const reasons = (u.fallback_reasons || []).slice().sort((a, b) => b.count - a.count);
    setText('fallback-reasons', reasons.length
      ? reasons.slice(0, 2).map((r) => r.lane + ': ' + r.reason + ' ×' + r.count).join(' · ')
      : 'none');
    $('fallback-reasons').title = reasons.map((r) => r.lane + ': ' + r.reason + ' ×' + r.count).join('\n');
    const share = t.requests ? t.local_share : null;
    setText('local-share', percent(share));
    $('local-share-bar').style.width = share ? Math.round(share * 100) + '%' : '0';
    state.usageByLane = new Map((u.rows || []).map((r) => [r.key, r]));
  }

  // ---- lanes -----------------------------------------------------------------------------
  function renderStatus(s) {
    setText('service', s.service === 'switchyard' ? location.host : s.service);
    setText('clock', clock(s.now_ms));
    state.lanes = s.lanes.map((l) => l.lane);
    state.lanes.forEach(color);
    $('lanes').replaceChildren(...s.lanes.map((l) => laneCard(l, s.now_ms)));
    renderLegend();
  }

  function laneCard(l, now) {
    const used = state.usageByLane && state.usageByLane.get(l.lane);
    const card = el('article', { class: 'card lane ' + l.state, 'data-testid': 'lane', 'data-lane': l.lane, 'data-state': l.state },
      el('div', { class: 'lane-head' },
        el('span', { class: 'dot ' + l.state, title: l.state }),
        el('span', { class: 'name', 'data-testid': 'lane-name', text: l.lane, title: l.lane }),
        l.local ? el('span', { class: 'badge local', text: 'local' }) : null,
        l.premium ? el('span', { class: 'badge premium', text: 'premium' }) : null,
        el('span', { class: 'state', 'data-testid': 'lane-state', text: l.state })),
      el('div', { class: 'lane-model' }, l.provider + ' · ' + l.model),
      l.why ? el('div', { class: 'why', 'data-testid': 'lane-why', text: l.why }) : null,
      el('div', { class: 'lane-usage' },
        used ? num(used.requests) + ' requests · ' + num(used.tokens_in + used.tokens_out) + ' tokens · 24 h'
             : 'no requests in 24 h'));
    const budgets = l.budgets || [];
    if (budgets.length === 0) card.append(el('div', { class: 'no-budget', text: 'no quota limits' }));
    for (const b of budgets) card.append(budget(b, l, now));
    return card;
  }

  function budget(b, l, now) {
    const box = el('div', { class: 'budget' });
    if (b.key !== l.lane) box.append(el('div', { class: 'budget-key', text: b.key + ' · ' + b.source }));
    for (const w of b.windows || []) {
      const frac = w.limit ? Math.min(1, w.used / w.limit) : 0;
      const fill = el('span', { class: frac >= 1 ? 'full' : frac >= 0.8 ? 'warn' : '' });
      fill.style.width = (frac * 100).toFixed(1) + '%';
      box.append(el('div', { class: 'window', 'data-testid': 'budget-window', title: w.span },
        el('div', { class: 'wl' },
          el('span', {}, el('b', { text: w.name }), ' ' + num(w.used) + ' / ' + num(w.limit)),
          el('span', { class: 'reset', text: w.used && w.resets_at_ms ? 'resets ' + inTime(w.resets_at_ms - now) : num(w.left) + ' left' })),
        el('div', { class: 'meter' }, fill)));
    }
    if (b.usd_per_day) {
      const spent = b.spent_usd_today || 0;
      const frac = Math.min(1, spent / b.usd_per_day);
      const fill = el('span', { class: frac >= 1 ? 'full' : frac >= 0.8 ? 'warn' : '' });
      fill.style.width = (frac * 100).toFixed(1) + '%';
      box.append(el('div', { class: 'window' },
        el('div', { class: 'wl' }, el('span', {}, el('b', { text: 'usd/day' }), ' ' + usd(spent) + ' / ' + usd(b.usd_per_day))),
        el('div', { class: 'meter' }, fill)));
    }
    if (b.blocked) {
      box.append(el('div', { class: 'parked', 'data-testid': 'budget-blocked',
        text: b.blocked.outcome + ' until ' + clock(b.blocked.until_ms) + ': ' + b.blocked.reason }));
    }
    return box;
  }

  // ---- charts ----------------------------------------------------------------------------
  function renderSeries(s) {
    state.series = s;
    for (const l of s.lanes || []) color(l);
    drawChart($('chart-requests'), s, (p) => p.requests, 'requests');
    drawChart($('chart-tokens'), s, (p) => (p.tokens_in || 0) + (p.tokens_out || 0), 'tokens');
    renderLegend();
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function drawChart(box, s, value, unit) {
    const W = Math.max(box.clientWidth, 300);
    const H = Math.max(box.clientHeight, 150);
    const pad = { l: 38, r: 6, t: 8, b: 20 };
    const n = Math.max(1, Math.round((s.until_ms - s.since_ms) / s.step_ms));
    const lanes = (s.lanes && s.lanes.length ? s.lanes : state.lanes).slice();
    const cols = Array.from({ length: n }, () => new Map());
    for (const p of s.points || []) {
      const i = Math.min(n - 1, Math.max(0, Math.floor((p.t - s.since_ms) / s.step_ms)));
      cols[i].set(p.lane, (cols[i].get(p.lane) || 0) + value(p));
      if (!lanes.includes(p.lane)) lanes.push(p.lane);
    }
    const totals = cols.map((c) => [...c.values()].reduce((a, b) => a + b, 0));
    const max = niceMax(Math.max(0, ...totals));
    const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': unit + ' per lane, last hour' });
    const y = (v) => pad.t + (H - pad.t - pad.b) * (1 - v / max);
    for (const g of [0, max / 2, max]) {
      root.append(svg('line', { class: 'grid', x1: pad.l, x2: W - pad.r, y1: y(g), y2: y(g) }));
      root.append(svg('text', { x: pad.l - 6, y: y(g) + 4, 'text-anchor': 'end' }, Number.isInteger(g) ? num(g) : g.toFixed(1)));
    }
    const bw = (W - pad.l - pad.r) / n;
    cols.forEach((c, i) => {
      if (totals[i] === 0) return;
      const x = pad.l + i * bw;
      const col = svg('g', { class: 'col' });
      const lines = [clock(s.since_ms + i * s.step_ms)];
      col.append(svg('rect', { class: 'hover', x, y: pad.t, width: bw, height: H - pad.t - pad.b }));
      let acc = 0;
      for (const lane of lanes) {
        const v = c.get(lane);
        if (!v) continue;
        const r = svg('rect', { x: x + bw * 0.12, width: Math.max(1, bw * 0.76), y: y(acc + v), height: Math.max(1, y(acc) - y(acc + v)), rx: 1.5 });
        r.style.fill = color(lane);
        col.append(r);
        acc += v;
        lines.push(lane + ': ' + num(v) + ' ' + unit);
      }
      col.prepend(svg('title', {}, lines.join('\n')));
      root.append(col);
    });
    const labels = [[0, '−60 min', 'start'], [0.5, '−30 min', 'middle'], [1, 'now', 'end']];
    for (const [f, text, anchor] of labels) {
      root.append(svg('text', { x: pad.l + f * (W - pad.l - pad.r), y: H - 4, 'text-anchor': anchor }, text));
    }
    if (totals.every((t) => t === 0)) {
      root.append(svg('text', { class: 'none', x: (W + pad.l) / 2, y: H / 2, 'text-anchor': 'middle' }, 'no ' + unit + ' in the last hour'));
    }
    box.replaceChildren(root);
  }

  function renderLegend() {
    const lanes = state.lanes.slice();
    for (const l of (state.series && state.series.lanes) || []) if (!lanes.includes(l)) lanes.push(l);
    $('legend').replaceChildren(...lanes.map((l) => el('span', {}, swatch(l), l)));
  }

  // ---- recent requests -------------------------------------------------------------------
  function renderRequests(data) {
    const rows = data.requests || [];
    const first = state.seen === null;
    const seen = new Set(rows.map((r) => r.id));
    $('requests').replaceChildren(...rows.map((r) => requestRow(r, !first && !state.seen.has(r.id))));
    state.seen = seen;
    $('no-requests').hidden = rows.length > 0;
  }

  function requestRow(r, isNew) {
    const ok = r.status === 'ok';
    const statusText = ok ? 'ok' : (r.error_class || r.status) + (r.http_status ? ' ' + r.http_status : '');
    return el('tr', { class: isNew ? 'new' : '', 'data-testid': 'request-row', 'data-id': r.id, 'data-lane': r.lane || '' },
      el('td', { class: 'time', title: new Date(r.ts_ms).toString() }, clock(r.ts_ms)),
      el('td', {}, r.route || '–'),
      el('td', {}, r.lane ? el('span', { class: 'lane-cell' }, swatch(r.lane), r.lane) : '–'),
      el('td', {}, el('span', { class: 'status ' + (ok ? 'ok' : 'error'), 'data-testid': 'request-status', text: statusText })),
      el('td', { class: 'num' }, num(r.tokens_in || 0) + ' / ' + num(r.tokens_out || 0)),
      el('td', { class: 'num' }, (r.stream ? ms(r.ttft_ms) + ' / ' : '') + ms(r.duration_ms)),
      el('td', { class: 'num' }, usd(r.cost_usd || 0)),
      el('td', {}, trail(r)));
  }

  function trail(r) {
    const box = el('div', { class: 'trail', 'data-testid': 'trail' });
    (r.attempts || []).forEach((a, i) => {
      if (i > 0) box.append(el('span', { class: 'arrow', text: '→' }));
      const good = a.outcome === 'ok';
      const tip = [a.provider, a.http_status ? 'HTTP ' + a.http_status : null,
        a.duration_ms !== null && a.duration_ms !== undefined ? ms(a.duration_ms) : null, a.detail]
        .filter(Boolean).join(' · ');
      box.append(el('span', { class: 'chip ' + (good ? 'ok' : 'failed'), 'data-testid': 'attempt', title: tip,
        text: a.lane + ':' + a.outcome }));
    });
    if (r.fallback && r.fallback.reason) box.title = 'fell back: ' + r.fallback.reason;
    return box;
  }

  // ---- start -----------------------------------------------------------------------------
  // Signing in and out are plain forms (POST /dashboard/login and /dashboard/logout): the
  // session cookie is HttpOnly, so this script can neither read it nor needs to.
  document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
  window.addEventListener('resize', () => { if (state.series) renderSeries(state.series); });
  setInterval(showUpdated, 1000);
  tick();
})();
