// Admin › Limits: virtual host limits (max-connections, max-queues) and user
// limits (max-connections, max-channels), RabbitMQ's /api/vhost-limits and
// /api/user-limits. A negative value means no limit, as in RabbitMQ. On a
// broker without those endpoints each section says so.
import { api, enc, maybe } from '../../api.js';
import { app } from '../../app.js';
import { h, clear, section, form, field, flash, fmtNum } from '../../util.js';
import { simpleTable } from '../../table.js';
import { del } from './buttons.js';

export async function limits(ctx, body) {
  const users = (await api('/users')).map((u) => u.name);
  body.append(
    await limitSection({ kind: 'vhost', title: 'Virtual host limits', names: app.vhosts, owner: 'vhost', limits: ['max-connections', 'max-queues'] }),
    await limitSection({ kind: 'user', title: 'User limits', names: users, owner: 'user', limits: ['max-connections', 'max-channels'] }),
  );
}

async function limitSection({ kind, title, names, owner, limits }) {
  const list = h('div', { id: `${kind}-limits` });
  const ownerLabel = kind === 'vhost' ? 'Virtual host' : 'User';
  const load = async () => {
    const all = await maybe(`/${kind}-limits`);
    if (all === null) { clear(list, h('p', { class: 'muted' }, `This broker does not support ${kind} limits yet.`)); return false; }
    const rows = all.flatMap((x) => Object.entries(x.value || {}).map(([limit, value]) => ({ owner: x[owner], limit, value })));
    clear(list, simpleTable([
      { label: ownerLabel, key: 'owner' }, { label: 'Limit', key: 'limit' },
      { label: 'Value', render: (r) => fmtNum(r.value), cls: 'num' },
      { label: '', render: (r) => del(`/${kind}-limits/${enc(r.owner)}/${enc(r.limit)}`, `${r.limit} of ${r.owner}`, load, 'Clear') },
    ], rows, 'No limits.'));
    return true;
  };
  const supported = await load();
  return section(title, list, supported ? form({ id: `set-${kind}-limit`, class: 'form inline' }, [
    field(ownerLabel, h('select', { name: 'owner' }, names.map((n) => h('option', {}, n)))),
    field('Limit', h('select', { name: 'limit' }, limits.map((l) => h('option', {}, l)))),
    field('Value', h('input', { name: 'value', type: 'number', required: true, value: 100 })),
  ], 'Set limit', async (d) => {
    await api(`/${kind}-limits/${enc(d.get('owner'))}/${enc(d.get('limit'))}`, { method: 'PUT', body: { value: Number(d.get('value')) } });
    flash(`${d.get('limit')} set`); load();
  }) : null);
}
