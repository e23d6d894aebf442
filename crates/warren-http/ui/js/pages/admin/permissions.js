// Admin › Permissions: configure/write/read regexps per user and vhost, then
// topic permissions (topic-permissions.js).
import { api, enc } from '../../api.js';
import { app } from '../../app.js';
import { h, clear, section, form, field, flash } from '../../util.js';
import { simpleTable } from '../../table.js';
import { del } from './buttons.js';
import { topicPermissions } from './topic-permissions.js';

export async function permissions(ctx, body) {
  const list = h('div', { id: 'permissions' });
  const load = async () => clear(list, simpleTable([
    { label: 'User', key: 'user' }, { label: 'Virtual host', key: 'vhost' },
    { label: 'Configure', render: (p) => h('code', {}, p.configure) },
    { label: 'Write', render: (p) => h('code', {}, p.write) },
    { label: 'Read', render: (p) => h('code', {}, p.read) },
    { label: '', render: (p) => del(`/permissions/${enc(p.vhost)}/${enc(p.user)}`, `permissions of ${p.user} on ${p.vhost}`, load, 'Clear') },
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
  await topicPermissions(body, userNames);
}
