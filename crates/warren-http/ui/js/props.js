// A table of properties (client properties, capabilities, arguments) as
// RabbitMQ's UI shows them: nested objects as nested tables, booleans as
// true/false, everything else as text.
import { h } from './util.js';

export function propsView(obj, attrs = {}) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return h('p', { class: 'muted', ...attrs }, 'None.');
  return h('table', { class: 'props', ...attrs }, h('tbody', {}, keys.map((k) => h('tr', { dataset: { key: k } },
    h('th', { scope: 'row' }, k), h('td', {}, value(obj[k]))))));
}

function value(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '–');
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  if (typeof v === 'object') return propsView(v);
  return String(v);
}

export function fmtDate(ms) {
  if (typeof ms !== 'number') return '–';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
