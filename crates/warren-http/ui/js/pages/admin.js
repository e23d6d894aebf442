// Admin: users, virtual hosts, permissions, policies, definitions
// export (download) and import (upload).
import { api, enc, credentials } from '../api.js';
import { app, loadVhosts, tagList } from '../app.js';
import { h, clear, section, simpleTable, form, field, flash, errText, parseArgs } from '../util.js';

const TABS = [['users', 'Users'], ['vhosts', 'Virtual hosts'], ['permissions', 'Permissions'], ['policies', 'Policies'], ['definitions', 'Definitions']];

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
  const pages = { users, vhosts, permissions, policies, definitions };
  try { await pages[tab](ctx, body); } catch (e) { body.append(h('p', { class: 'error' }, errText(e))); }
}

const del = (path, what, reload) => h('button', {
  class: 'small danger', 'aria-label': `Delete ${what}`,
  onclick: async () => { if (!confirm(`Delete ${what}?`)) return; try { await api(path, { method: 'DELETE' }); flash(`Deleted ${what}`); reload(); } catch (e) { flash(errText(e), 'error'); } },
}, 'Delete');

// Users: name, tags, the vhosts each can access, password set or not; Edit
// fills the form (an empty password keeps the current one), Delete asks.
async function users(ctx, body) {
  const list = h('div', { id: 'users' });
  const name = h('input', { name: 'name', required: true, id: 'user-name' });
  const password = h('input', { name: 'password', type: 'password', id: 'user-password', autocomplete: 'new-password' });
  const tags = h('input', { name: 'tags', id: 'user-tags', placeholder: 'administrator, monitoring, policymaker, management' });
  const tagButtons = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'].map((t) => h('button', {
    type: 'button', class: 'small', title: `Add the ${t} tag`,
    onclick: () => { const now = tagList(tags.value); if (!now.includes(t)) tags.value = [...now, t].join(', '); },
  }, t));
  const load = async () => {
    const [all, perms] = await Promise.all([api('/users'), api('/permissions')]);
    clear(list, simpleTable([
      { label: 'Name', key: 'name' },
      { label: 'Tags', render: (u) => tagList(u.tags).flatMap((t) => [h('span', { class: 'tag' }, t), ' ']) },
      { label: 'Can access virtual hosts', render: (u) => perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || h('span', { class: 'muted' }, 'No access') },
      { label: 'Has password', render: (u) => (u.password_hash ? '●' : '○') },
      { label: '', render: (u) => [h('button', {
        class: 'small', 'aria-label': `Edit user ${u.name}`,
        onclick: () => { name.value = u.name; tags.value = tagList(u.tags).join(', '); password.value = ''; password.focus(); },
      }, 'Edit'), ' ', del(`/users/${enc(u.name)}`, `user ${u.name}`, load)] },
    ], all));
  };
  await load();
  body.append(section('Users', list), section('Add / update a user', form({ id: 'add-user' }, [
    field('Username', name),
    field('Password', password, 'leave empty to keep an existing user\'s password'),
    field('Tags', tags, h('span', {}, 'comma-separated: ', tagButtons)),
  ], 'Add / update user', async (d) => {
    const user = { tags: tagList(d.get('tags')).join(',') };
    if (d.get('password')) user.password = d.get('password');
    await api(`/users/${enc(d.get('name'))}`, { method: 'PUT', body: user });
    flash(`User ${d.get('name')} saved`); password.value = ''; load();
  })));
}

async function vhosts(ctx, body) {
  const list = h('div', { id: 'vhosts' });
  const load = async () => clear(list, simpleTable([
    { label: 'Name', key: 'name' },
    { label: 'Description', key: 'description' },
    { label: 'Messages', key: 'messages', cls: 'num' },
    { label: 'Tracing', key: 'tracing' },
    { label: '', render: (v) => [h('a', { class: 'small-link', href: `#/topology/${enc(v.name)}` }, 'topology'), ' ', del(`/vhosts/${enc(v.name)}`, `virtual host ${v.name}`, async () => { await loadVhosts(); load(); })] },
  ], await api('/vhosts')));
  await load();
  body.append(section('Virtual hosts', list), section('Add a virtual host', form({ id: 'add-vhost' }, [
    field('Name', h('input', { name: 'name', required: true })),
    field('Description', h('input', { name: 'description' })),
  ], 'Add virtual host', async (d) => {
    await api(`/vhosts/${enc(d.get('name'))}`, { method: 'PUT', body: { description: d.get('description') || '' } });
    const me = credentials();
    if (me) await api(`/permissions/${enc(d.get('name'))}/${enc(me.user)}`, { method: 'PUT', body: { configure: '.*', write: '.*', read: '.*' } }).catch(() => {});
    flash(`Virtual host ${d.get('name')} added`); await loadVhosts(); load();
  })));
}

async function permissions(ctx, body) {
  const list = h('div', { id: 'permissions' });
  const load = async () => clear(list, simpleTable([
    { label: 'User', key: 'user' }, { label: 'Virtual host', key: 'vhost' },
    { label: 'Configure', render: (p) => h('code', {}, p.configure) },
    { label: 'Write', render: (p) => h('code', {}, p.write) },
    { label: 'Read', render: (p) => h('code', {}, p.read) },
    { label: '', render: (p) => del(`/permissions/${enc(p.vhost)}/${enc(p.user)}`, `permissions of ${p.user} on ${p.vhost}`, load) },
  ], await api('/permissions')));
  await load();
  const userNames = (await api('/users')).map((u) => u.name);
  body.append(section('Permissions', list), section('Set permission', form({ id: 'set-permission' }, [
    field('User', h('select', { name: 'user' }, userNames.map((u) => h('option', {}, u)))),
    field('Virtual host', h('select', { name: 'vhost' }, app.vhosts.map((v) => h('option', {}, v)))),
    field('Configure regexp', h('input', { name: 'configure', value: '.*' })),
    field('Write regexp', h('input', { name: 'write', value: '.*' })),
    field('Read regexp', h('input', { name: 'read', value: '.*' })),
  ], 'Set permission', async (d) => {
    await api(`/permissions/${enc(d.get('vhost'))}/${enc(d.get('user'))}`, { method: 'PUT', body: { configure: d.get('configure'), write: d.get('write'), read: d.get('read') } });
    flash('Permission set'); load();
  })));
}

async function policies(ctx, body) {
  const list = h('div', { id: 'policies' });
  const load = async () => clear(list, simpleTable([
    { label: 'Virtual host', key: 'vhost' }, { label: 'Name', key: 'name' },
    { label: 'Pattern', render: (p) => h('code', {}, p.pattern) }, { label: 'Apply to', key: 'apply-to' },
    { label: 'Definition', render: (p) => h('code', {}, JSON.stringify(p.definition)) }, { label: 'Priority', key: 'priority', cls: 'num' },
    { label: '', render: (p) => del(`/policies/${enc(p.vhost)}/${enc(p.name)}`, `policy ${p.name}`, load) },
  ], await api(app.vhost ? `/policies/${enc(app.vhost)}` : '/policies'), 'No policies.'));
  await load();
  body.append(section('Policies', list), section('Add / update a policy', form({ id: 'add-policy' }, [
    field('Virtual host', h('select', { name: 'vhost' }, app.vhosts.map((v) => h('option', { selected: v === (app.vhost || '/') }, v)))),
    field('Name', h('input', { name: 'name', required: true })),
    field('Pattern', h('input', { name: 'pattern', required: true, placeholder: '^orders\\.' })),
    field('Apply to', h('select', { name: 'apply-to' }, ['all', 'queues', 'exchanges'].map((x) => h('option', {}, x)))),
    field('Priority', h('input', { name: 'priority', type: 'number', value: 0 })),
    field('Definition', h('textarea', { name: 'definition', rows: 3, placeholder: 'max-length=1000\nmessage-ttl=60000' }), 'key=value per line, or JSON'),
  ], 'Add / update policy', async (d) => {
    await api(`/policies/${enc(d.get('vhost'))}/${enc(d.get('name'))}`, { method: 'PUT', body: { pattern: d.get('pattern'), 'apply-to': d.get('apply-to'), priority: Number(d.get('priority')), definition: parseArgs(d.get('definition')) } });
    flash(`Policy ${d.get('name')} saved`); load();
  })));
}

async function definitions(ctx, body) {
  const scope = h('select', { name: 'vhost' }, h('option', { value: '' }, 'All virtual hosts'), app.vhosts.map((v) => h('option', { value: v }, v)));
  const file = h('input', { type: 'file', accept: '.json,application/json', id: 'import-file' });
  body.append(
    section('Export definitions', h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, exchanges, queues and bindings, in RabbitMQ\'s definitions.json format.'),
      h('div', { class: 'form inline' }, field('Scope', scope), h('div', { class: 'actions' }, h('button', {
        id: 'export', onclick: async () => {
          const v = scope.value;
          const defs = await api(v ? `/definitions/${enc(v)}` : '/definitions');
          const blob = new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' });
          const a = h('a', { href: URL.createObjectURL(blob), download: `warren_definitions${v ? '_' + v.replace(/\W/g, '_') : ''}_${new Date().toISOString().slice(0, 10)}.json` });
          document.body.append(a); a.click(); a.remove();
          flash('Definitions exported');
        },
      }, 'Download definitions')))),
    section('Import definitions', h('p', { class: 'muted' }, 'A definitions file exported from Warren or RabbitMQ.'),
      h('div', { class: 'form inline' }, field('File', file), h('div', { class: 'actions' }, h('button', {
        id: 'import', onclick: async () => {
          if (!file.files[0]) { flash('Choose a file first', 'error'); return; }
          try {
            const text = await file.files[0].text();
            const v = scope.value;
            await api(v ? `/definitions/${enc(v)}` : '/definitions', { method: 'POST', body: text });
            flash('Definitions imported'); loadVhosts();
          } catch (e) { flash(errText(e), 'error'); }
        },
      }, 'Upload definitions')))),
  );
}
