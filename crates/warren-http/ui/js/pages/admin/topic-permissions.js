// Topic permissions (RabbitMQ's /api/topic-permissions): per user, vhost and
// topic exchange, write/read regexps on routing keys. On a broker without
// that endpoint the section says so.
import { api, enc, maybe } from '../../api.js';
import { app } from '../../app.js';
import { h, clear, section, form, field, flash } from '../../util.js';
import { simpleTable } from '../../table.js';
import { del } from './buttons.js';

export async function topicPermissions(body, userNames) {
  const list = h('div', { id: 'topic-permissions' });
  const load = async () => {
    const all = await maybe('/topic-permissions');
    if (all === null) { clear(list, h('p', { class: 'muted' }, 'This broker does not support topic permissions yet.')); return false; }
    clear(list, simpleTable([
      { label: 'User', key: 'user' }, { label: 'Virtual host', key: 'vhost' }, { label: 'Exchange', key: 'exchange' },
      { label: 'Write', render: (p) => h('code', {}, p.write) },
      { label: 'Read', render: (p) => h('code', {}, p.read) },
      { label: '', render: (p) => del(`/topic-permissions/${enc(p.vhost)}/${enc(p.user)}`, `topic permissions of ${p.user} on ${p.vhost}`, load, 'Clear') },
    ], all, 'No topic permissions.'));
    return true;
  };
  const supported = await load();
  body.append(section('Topic permissions', list, supported ? form({ id: 'set-topic-permission', class: 'form inline' }, [
    field('User', h('select', { name: 'user' }, userNames.map((u) => h('option', {}, u)))),
    field('Virtual host', h('select', { name: 'vhost' }, app.vhosts.map((v) => h('option', {}, v)))),
    field('Exchange', h('input', { name: 'exchange', value: 'amq.topic', required: true })),
    field('Write regexp', h('input', { name: 'write', value: '.*' })),
    field('Read regexp', h('input', { name: 'read', value: '.*' })),
  ], 'Set topic permission', async (d) => {
    await api(`/topic-permissions/${enc(d.get('vhost'))}/${enc(d.get('user'))}`, { method: 'PUT', body: { exchange: d.get('exchange'), write: d.get('write'), read: d.get('read') } });
    flash('Topic permission set'); load();
  }) : null));
}
