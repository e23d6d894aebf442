// Tables: the paged, sortable, filterable listing backed by the API's
// page/page_size/sort/name parameters (every list page uses it), and a small
// client-side table for short lists (bindings, consumers, users...).
import { api } from './api.js';
import { h, clear, fmtNum, errText } from './util.js';

/* A listing backed by a paged API endpoint.
   opts: {id, path: () => '/queues' , columns: [{label, key?, sort?, render(row), cls}],
          rowKey(row), pageSize, empty, missing} */
export function pagedTable(ctx, opts) {
  const state = { page: 1, pageSize: opts.pageSize || 50, sort: opts.sort || 'name', reverse: false, name: '', regex: false };
  const filter = h('input', { type: 'search', placeholder: 'Filter by name', class: 'filter', 'aria-label': 'Filter' });
  const regex = h('input', { type: 'checkbox' });
  const info = h('span', { class: 'muted pager-info' });
  const prev = h('button', { class: 'small pager-prev', 'aria-label': 'Previous page', onclick: () => { state.page--; load(); } }, '‹ Prev');
  const next = h('button', { class: 'small pager-next', 'aria-label': 'Next page', onclick: () => { state.page++; load(); } }, 'Next ›');
  const pageSel = h('select', { class: 'pager-page', 'aria-label': 'Page', onchange: () => { state.page = +pageSel.value; load(); } });
  const sizeSel = h('select', { class: 'pager-size', 'aria-label': 'Rows per page', onchange: () => { state.pageSize = +sizeSel.value; state.page = 1; load(); } },
    [20, 50, 100, 500].map((n) => h('option', { value: n, selected: n === state.pageSize }, `${n} per page`)));
  const thead = h('thead');
  const tbody = h('tbody');
  const table = h('table', { class: 'grid', id: opts.id }, thead, tbody);
  const message = h('div', { class: 'muted table-msg' });
  let timer;
  filter.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { state.name = filter.value; state.page = 1; load(); }, 250); });
  regex.addEventListener('change', () => { state.regex = regex.checked; state.page = 1; load(); });

  // Re-drawn only when the sort changes: a refresh keeps keyboard focus on a header.
  let drawn = null;
  let shown = null;
  function header() {
    const key = `${state.sort}:${state.reverse}`;
    if (key === drawn) return;
    drawn = key;
    clear(thead, h('tr', {}, opts.columns.map((c) => {
      const sorted = c.sort && state.sort === c.sort;
      const toggle = () => {
        if (state.sort === c.sort) state.reverse = !state.reverse; else { state.sort = c.sort; state.reverse = false; }
        state.page = 1; load();
      };
      return h('th', {
        scope: 'col',
        class: [c.cls, c.sort ? 'sortable' : '', sorted ? (state.reverse ? 'desc' : 'asc') : ''].join(' '),
        'aria-sort': sorted ? (state.reverse ? 'descending' : 'ascending') : undefined,
      }, c.sort ? h('button', { type: 'button', class: 'sort', title: `Sort by ${c.label}`, onclick: toggle }, c.label) : c.label);
    })));
  }

  async function load() {
    const q = new URLSearchParams({ page: state.page, page_size: state.pageSize, sort: state.sort, sort_reverse: state.reverse });
    if (state.name) { q.set('name', state.name); if (state.regex) q.set('use_regex', 'true'); }
    let res;
    try {
      res = await api(`${opts.path()}?${q}`);
    } catch (e) {
      if (e.status === 404 && opts.missing) { clear(tbody); shown = null; message.textContent = opts.missing; return; }
      if (e.body && e.body.error === 'page_out_of_range' && state.page > 1) { state.page = 1; return load(); }
      message.textContent = errText(e);
      return;
    }
    if (Array.isArray(res)) res = { items: res, page: 1, page_count: 1, filtered_count: res.length, total_count: res.length };
    header();
    // Rows are rebuilt only when the page's objects changed: an idle table
    // keeps the user's text selection, hover and focus between polls.
    const key = JSON.stringify(res.items);
    if (key !== shown) {
      shown = key;
      clear(tbody, res.items.map((row) => h('tr', { dataset: { name: row.name ?? '' } },
        opts.columns.map((c) => h('td', { class: c.cls }, c.render ? c.render(row) : fmtCell(row[c.key]))))));
    }
    message.textContent = res.items.length ? '' : (opts.empty || 'Nothing here yet.');
    state.page = res.page || 1;
    info.textContent = `Page ${res.page || 1} of ${Math.max(1, res.page_count || 1)} · ${fmtNum(res.filtered_count)} shown of ${fmtNum(res.total_count)}`;
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= (res.page_count || 1);
    const pages = Math.min(Math.max(1, res.page_count || 1), 5000);
    if (pageSel.options.length !== pages) clear(pageSel, Array.from({ length: pages }, (_, i) => h('option', { value: i + 1 }, `Page ${i + 1}`)));
    pageSel.value = String(state.page);
  }

  header();
  const el = h('div', { class: 'paged' },
    h('div', { class: 'toolbar' }, filter, h('label', { class: 'check' }, regex, 'Regex'), h('span', { class: 'grow' }), info, prev, pageSel, next, sizeSel),
    h('div', { class: 'scroll' }, table), message);
  ctx.every(opts.refresh || 5000, load);
  return { el, reload: load };
}

function fmtCell(v) {
  if (v === undefined || v === null) return '–';
  if (typeof v === 'number') return fmtNum(v);
  if (typeof v === 'boolean') return v ? '●' : '○';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// Simple client-side table (small lists: bindings, consumers, users...).
export function simpleTable(columns, rows, empty = 'None.') {
  if (!rows || !rows.length) return h('p', { class: 'muted' }, empty);
  return h('div', { class: 'scroll' }, h('table', { class: 'grid' },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { class: c.cls, scope: 'col' }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', { class: c.cls }, c.render ? c.render(r) : fmtCell(r[c.key]))))))));
}
