// Admin: the tab bar and which tabs a user gets; each tab is a module
// under admin/ (users, virtual hosts, permissions, policies, limits,
// definitions export/import).
import { app } from '../app.js';
import { h, errText } from '../util.js';
import { users } from './admin/users.js';
import { vhosts } from './admin/vhosts.js';
import { permissions } from './admin/permissions.js';
import { policies } from './admin/policies.js';
import { limits } from './admin/limits.js';
import { definitions } from './admin/definitions.js';

const TABS = [['users', 'Users'], ['vhosts', 'Virtual hosts'], ['permissions', 'Permissions'], ['policies', 'Policies'], ['limits', 'Limits'], ['definitions', 'Definitions']];

// Administrators see every tab; policymakers only Policies (as RabbitMQ's UI);
// other users get no Admin tab, and a message if they open its address.
export async function render(ctx, main, tab) {
  const tabs = app.isAdmin ? TABS : app.isPolicymaker ? TABS.filter(([k]) => k === 'policies') : [];
  main.append(h('h1', {}, 'Admin'));
  if (!tabs.length) {
    main.append(h('p', { class: 'error', id: 'not-authorised', role: 'alert' }, 'Only administrators (and policymakers, for policies) can use the Admin pages.'));
    return;
  }
  if (!tabs.some(([k]) => k === tab)) tab = tabs[0][0];
  main.append(h('nav', { class: 'subnav', 'aria-label': 'Admin' }, tabs.map(([k, l]) => h('a', { href: `#/admin/${k}`, class: k === tab ? 'active' : '', 'aria-current': k === tab ? 'page' : undefined }, l))));
  const body = h('div');
  main.append(body);
  const pages = { users, vhosts, permissions, policies, limits, definitions };
  try { await pages[tab](ctx, body); } catch (e) { body.append(h('p', { class: 'error' }, errText(e))); }
}
