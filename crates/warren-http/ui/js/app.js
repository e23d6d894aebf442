// The app shell: login, navigation, the vhost picker and a hash router.
// Each page is a module exporting `render(ctx, main, params)`; ctx.every()
// polls while the page is shown and stops when the user leaves it.
import { api, credentials, remember, forget, maybe } from './api.js';
import { h, clear, errText } from './util.js';
import * as overview from './pages/overview.js';
import * as lists from './pages/lists.js';
import * as queue from './pages/queue.js';
import * as exchange from './pages/exchange.js';
import * as admin from './pages/admin.js';
import * as topology from './pages/topology.js';
import * as connection from './pages/connection.js';
import * as channel from './pages/channel.js';

const $ = (id) => document.getElementById(id);

const routes = [
  [/^\/?$/, 'overview', (c, m) => overview.render(c, m)],
  [/^\/overview$/, 'overview', (c, m) => overview.render(c, m)],
  [/^\/topology(?:\/([^/]+))?$/, 'topology', (c, m, p) => topology.render(c, m, p[0])],
  [/^\/connections$/, 'connections', (c, m) => lists.connections(c, m)],
  [/^\/connections\/([^/]+)$/, 'connections', (c, m, p) => connection.render(c, m, p[0])],
  [/^\/channels$/, 'channels', (c, m) => lists.channels(c, m)],
  [/^\/channels\/([^/]+)$/, 'channels', (c, m, p) => channel.render(c, m, p[0])],
  [/^\/exchanges$/, 'exchanges', (c, m) => lists.exchanges(c, m)],
  [/^\/exchanges\/([^/]+)\/([^/]+)$/, 'exchanges', (c, m, p) => exchange.render(c, m, p[0], p[1])],
  [/^\/queues$/, 'queues', (c, m) => lists.queues(c, m)],
  [/^\/queues\/([^/]+)\/([^/]+)$/, 'queues', (c, m, p) => queue.render(c, m, p[0], p[1])],
  [/^\/admin(?:\/(\w+))?$/, 'admin', (c, m, p) => admin.render(c, m, p[0])],
];

export const app = {
  user: null,
  // What the logged-in user's tags let it manage (RabbitMQ's rules).
  get tags() { return this.user ? tagList(this.user.tags) : []; },
  get isAdmin() { return this.tags.includes('administrator'); },
  get isPolicymaker() { return this.isAdmin || this.tags.includes('policymaker'); },
  overview: null,
  vhosts: [],
  get vhost() { return sessionStorage.getItem('warren.vhost') || ''; },
  set vhost(v) { sessionStorage.setItem('warren.vhost', v); },
};

// RabbitMQ gives tags as a list (3.9+) or a comma-separated string (older).
export function tagList(t) {
  return (Array.isArray(t) ? t : String(t || '').split(',')).map((x) => String(x).trim()).filter(Boolean);
}

let current = null; // the shown page's context

function newContext() {
  const timers = [];
  const ctx = {
    alive: true,
    every(ms, fn) {
      let busy = false;
      const tick = async () => {
        if (!ctx.alive || busy || document.hidden && ms < 5000 && ctx.ran) return;
        busy = true;
        try { await fn(); } catch (e) { console.warn(e); } finally { busy = false; ctx.ran = true; }
      };
      tick();
      timers.push(setInterval(tick, ms));
    },
    onLeave: [],
    dispose() { ctx.alive = false; timers.forEach(clearInterval); ctx.onLeave.forEach((f) => f()); },
  };
  return ctx;
}

async function route() {
  if (!app.user) return;
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path] = raw.split('?');
  if (current) current.dispose();
  current = newContext();
  const main = clear($('main'));
  for (const [re, tab, fn] of routes) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.tab === tab);
      if (a.dataset.tab === tab) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    }
    document.body.dataset.page = tab;
    try {
      await fn(current, main, m.slice(1).map((s) => (s === undefined ? undefined : decodeURIComponent(s))));
    } catch (e) {
      main.append(h('p', { class: 'error' }, errText(e)));
    }
    return;
  }
  main.append(h('p', { class: 'error' }, `No page at ${path}`));
}

function showLogin(message) {
  $('shell').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-username').focus();
}

async function start() {
  try {
    app.user = await api('/whoami');
  } catch (e) {
    forget();
    app.user = null;
    showLogin(e.status === 401 ? (e.body && e.body.reason === 'Login failed' ? 'Login failed' : (e.body && e.body.reason) || 'Login failed') : errText(e));
    return;
  }
  $('login').hidden = true;
  $('shell').hidden = false;
  $('whoami').textContent = app.user.name;
  document.body.classList.toggle('is-admin', app.isAdmin);
  // The Admin tab: administrators, and policymakers (policies only), as RabbitMQ.
  document.querySelector('#nav a[data-tab="admin"]').hidden = !app.isPolicymaker;
  try {
    app.overview = await api('/overview');
    $('product').textContent = `${app.overview.product_name || 'Warren'} ${app.overview.product_version || ''} · node ${app.overview.node}`;
  } catch { /* shown on the overview page */ }
  await loadVhosts();
  route();
}

export async function loadVhosts() {
  try { app.vhosts = (await api('/vhosts')).map((v) => v.name); } catch { app.vhosts = ['/']; }
  const sel = $('vhost-select');
  const chosen = app.vhost;
  clear(sel, h('option', { value: '' }, 'All'), app.vhosts.map((v) => h('option', { value: v, selected: v === chosen }, v)));
  if (chosen && !app.vhosts.includes(chosen)) app.vhost = '';
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  remember($('login-username').value, $('login-password').value);
  start();
});
$('logout').addEventListener('click', () => { forget(); app.user = null; if (current) current.dispose(); showLogin(''); });
$('vhost-select').addEventListener('change', (ev) => { app.vhost = ev.target.value; route(); });
window.addEventListener('hashchange', route);
window.addEventListener('warren:unauthorised', () => { forget(); app.user = null; if (current) current.dispose(); showLogin('Session expired: log in again'); });

if (credentials()) start(); else showLogin('');
export { maybe };
