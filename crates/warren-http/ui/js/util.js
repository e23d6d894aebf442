// DOM building, number formatting, message_stats access, links, notices,
// forms and feature tags (tables are in table.js).
import { ApiError } from './api.js';

// h('div', {class: 'x', onclick: f}, child, 'text', [more children])
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), guarded(v));
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

// Event handlers' failures (a refused API call in an async handler) are
// shown to the user instead of ending as unhandled rejections.
function guarded(fn) {
  return (ev) => {
    try {
      const r = fn(ev);
      if (r && typeof r.catch === 'function') r.catch((e) => flash(errText(e), 'error'));
    } catch (e) { flash(errText(e), 'error'); }
  };
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }

export function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export function fmtNum(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US');
}

export function fmtRate(r) {
  if (r === undefined || r === null || Number.isNaN(r)) return '–';
  if (r === 0) return '0/s';
  if (r >= 1000) return `${(r / 1000).toFixed(r >= 10000 ? 0 : 1)}k/s`;
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}/s`;
}

export function fmtBytes(b) {
  if (b === undefined || b === null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${i ? b.toFixed(1) : b} ${u[i]}`;
}

export function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

// message_stats.<field>_details.rate, or undefined when the broker does not report it.
export function rate(obj, field) {
  const d = obj && obj.message_stats && obj.message_stats[field + '_details'];
  return d && typeof d.rate === 'number' ? d.rate : undefined;
}

export function total(obj, field) {
  const v = obj && obj.message_stats && obj.message_stats[field];
  return typeof v === 'number' ? v : undefined;
}

export function hasStats(obj) {
  return !!(obj && obj.message_stats && Object.keys(obj.message_stats).length);
}

// Hash links for objects.
export const link = {
  queue: (v, n) => `#/queues/${encodeURIComponent(v)}/${encodeURIComponent(n)}`,
  exchange: (v, n) => `#/exchanges/${encodeURIComponent(v)}/${encodeURIComponent(n || 'amq.default')}`,
  topology: (v) => `#/topology/${encodeURIComponent(v)}`,
  connection: (n) => `#/connections/${encodeURIComponent(n)}`,
  channel: (n) => `#/channels/${encodeURIComponent(n)}`,
};

export function flash(msg, kind = 'ok') {
  let box = document.getElementById('flash');
  if (!box) { box = h('div', { id: 'flash' }); document.body.append(box); }
  const item = h('div', { class: `flash ${kind}` }, msg);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 6000 : 3000);
}

// A missing object's page: an alert above the page (it was deleted, or the
// address is wrong) instead of stale figures. Returns the element to place.
export function goneNotice(id) {
  return h('p', { class: 'error', id, role: 'alert', hidden: true });
}

export function showGone(el, text) {
  el.hidden = false;
  el.textContent = text;
}

export function errText(e) {
  if (e instanceof ApiError) return `${e.status}: ${e.message}`;
  return String(e && e.message ? e.message : e);
}

// A form whose submit runs `action(FormData)`, reporting success/failure.
export function form(attrs, fields, submitLabel, action) {
  const f = h('form', { class: 'form', ...attrs }, fields, h('div', { class: 'actions' }, h('button', { type: 'submit' }, submitLabel)));
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { await action(new FormData(f), f); } catch (e) { flash(errText(e), 'error'); }
  });
  return f;
}

export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function section(title, ...body) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...body);
}

export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// Parse "k=v" lines or JSON into an arguments object (numbers and booleans typed).
export function parseArgs(text) {
  text = (text || '').trim();
  if (!text) return {};
  if (text.startsWith('{')) return JSON.parse(text);
  const out = {};
  for (const line of text.split(/\n|,/)) {
    const m = line.match(/^\s*([^=]+?)\s*=\s*(.*?)\s*$/);
    if (!m) continue;
    let v = m[2];
    if (/^-?\d+(\.\d+)?$/.test(v)) v = Number(v);
    else if (v === 'true' || v === 'false') v = v === 'true';
    out[m[1]] = v;
  }
  return out;
}

export function features(o) {
  const f = [];
  if (o.durable) f.push(h('abbr', { class: 'tag', title: 'durable' }, 'D'));
  if (o.auto_delete) f.push(h('abbr', { class: 'tag', title: 'auto-delete' }, 'AD'));
  if (o.exclusive) f.push(h('abbr', { class: 'tag', title: 'exclusive' }, 'Excl'));
  if (o.internal) f.push(h('abbr', { class: 'tag', title: 'internal' }, 'I'));
  const args = o.arguments || {};
  for (const k of Object.keys(args)) f.push(h('abbr', { class: 'tag arg', title: `${k}: ${JSON.stringify(args[k])}` }, shortArg(k)));
  if (o.policy) f.push(h('abbr', { class: 'tag policy', title: 'policy' }, o.policy));
  return f.flatMap((x, i) => (i ? [' ', x] : [x])); // spaced: copied text and screen readers keep them apart
}

function shortArg(k) {
  const m = { 'x-message-ttl': 'TTL', 'x-expires': 'Exp', 'x-max-length': 'Lim', 'x-max-length-bytes': 'Lim B', 'x-dead-letter-exchange': 'DLX', 'x-dead-letter-routing-key': 'DLK', 'x-max-priority': 'Pri', 'x-queue-type': 'Type', 'x-single-active-consumer': 'SAC', 'alternate-exchange': 'AE' };
  return m[k] || k;
}
