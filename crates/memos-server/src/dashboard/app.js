// memos dashboard: see and fix what memos remembers. Plain JavaScript, no dependencies.
// Every page is calls to the public API (/api/openmem/v1) with the key the person entered;
// the key lives in this tab's sessionStorage only. Text from the store is set with
// textContent (through `h`), never parsed as HTML.
'use strict';

const API = '/api/openmem/v1/';
const KEY = 'memos.key';
const PAGE = 20;

// ---------- words: English and Chinese ----------
const ZH = {
  'Users': '用户', 'Search': '搜索', 'Knowledge bases': '知识库', 'Server': '服务器',
  'Theme': '主题', 'Log out': '退出', 'Cancel': '取消', 'Delete': '删除', 'Are you sure?': '确定吗？',
  'API key': 'API 密钥', 'Open': '进入', 'Enter the project\'s API key. It is kept in this tab only.': '输入项目的 API 密钥。它只保存在此标签页中。',
  'The key was refused': '密钥被拒绝', 'User': '用户', 'Kind': '类别', 'Memories': '记忆', 'Last activity': '最近活动',
  'Previous': '上一页', 'Next': '下一页', 'Page': '第', 'of': '页，共', 'items': '条',
  'Type': '类型', 'Key': '键', 'Value': '内容', 'Tags': '标签', 'Memory time': '记忆时间', 'Status': '状态',
  'Any': '全部', 'Tag': '标签', 'From': '从', 'To': '到', 'Apply': '应用', 'Profile': '画像',
  'Conversations': '对话', 'Delete this user': '删除此用户', 'No memories match.': '没有符合的记忆。',
  'Sources': '来源', 'History': '历史', 'Related': '相关记忆', 'Edit': '编辑', 'Save': '保存',
  'Soft delete': '软删除', 'Hard delete': '彻底删除', 'Saved.': '已保存。', 'Deleted.': '已删除。',
  'Before': '之前', 'After': '之后', 'No changes yet.': '尚无变更。', 'Conversation': '对话',
  'Query': '查询', 'As of': '截至', 'Filter (JSON)': '过滤（JSON）', 'Limit': '数量',
  'Relativity': '相关度', 'Lexical': '词法', 'Dense': '语义', 'Boost': '加权', 'Fused': '融合分',
  'Date window': '日期窗口', 'Preferences': '偏好', 'Preference note': '偏好说明', 'Files': '文件',
  'Name': '名称', 'Size': '大小', 'Chunks': '分块', 'Reason': '原因', 'No knowledge bases yet.': '还没有知识库。',
  'Version': '版本', 'Store': '存储', 'Embedding model': '嵌入模型', 'Embedding backlog': '待嵌入',
  'LLM': '大模型', 'LLM usage': '大模型用量', 'Messages': '消息', 'Load': '加载', 'No users yet.': '还没有用户。',
  'Open user': '打开用户', 'not found': '未找到', 'Created': '创建', 'Updated': '更新',
  'Confidence': '置信度', 'Why it ranked here': '排名原因', 'none': '无', 'in window': '在窗口内',
  'Memory': '记忆', 'Chat time': '对话时间', 'Role': '角色', 'Agent': '智能体', 'Knowledge base': '知识库',
  'Delete a whole user': '删除整个用户',
  'Outdated: what it said was superseded; the replacement ranks above it': '已过时：所述事实已被取代，取代它的记忆排在上方',
  'Current fact, placed above the outdated turn': '当前事实，排在过时的对话之上',
  'Also found by the earlier turns of the query': '查询中较早的对话也找到了它',
};
let lang = localStorage.getItem('memos.lang') === 'zh' ? 'zh' : 'en';
const t = (s) => (lang === 'zh' && ZH[s]) || s;

// ---------- DOM ----------
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}
const view = () => document.getElementById('view');
function show(...nodes) {
  const v = view();
  v.replaceChildren(...nodes.flat());
}
// Local time as YYYY-MM-DD HH:MM:SS: unambiguous in both languages.
const fmtTime = (ms) => {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};
const fmtIso = (iso) => (iso ? fmtTime(Date.parse(iso)) : '');
const num = (x, d = 3) => (x === null || x === undefined ? '' : Number(x).toFixed(d));
const link = (href, text) => h('a', { href }, text);
const enc = encodeURIComponent;
const statusBadge = (s) => h('span', { class: `badge s-${s}`, text: s });
const tags = (list) => (list || []).map((x) => h('span', { class: 'tag', text: x }));

// ---------- the API ----------
class ApiError extends Error {
  constructor(message, code, status) { super(message); this.code = code; this.status = status; }
}
async function api(path, body, method = 'POST') {
  const key = sessionStorage.getItem(KEY) || '';
  const r = await fetch(API + path, {
    method,
    headers: { 'Authorization': `Token ${key}`, ...(method === 'POST' ? { 'Content-Type': 'application/json' } : {}) },
    body: method === 'POST' ? JSON.stringify(body || {}) : undefined,
  });
  let out;
  try { out = await r.json(); } catch { throw new ApiError(`HTTP ${r.status}`, 0, r.status); }
  if (out.code !== 0) {
    if (r.status === 401) { sessionStorage.removeItem(KEY); }
    throw new ApiError(out.message || `HTTP ${r.status}`, out.code, r.status);
  }
  return out.data;
}

function errorBox(e) {
  return h('p', { class: 'error', role: 'alert', text: `${e.message}${e.code ? ` (${e.code})` : ''}` });
}

// A confirmation that says what will go; resolves true when confirmed.
function confirmDialog(text, action) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = action || t('Delete');
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.returnValue = '';
    d.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

// ---------- routing ----------
function route() {
  const raw = location.hash.replace(/^#/, '') || '/users';
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, q: new URLSearchParams(query || '') };
}
const href = (parts, q) => {
  const p = '#/' + parts.map(enc).join('/');
  const s = q ? new URLSearchParams(Object.entries(q).filter(([, v]) => v !== '' && v !== null && v !== undefined)).toString() : '';
  return s ? `${p}?${s}` : p;
};

async function render() {
  translateStatic();
  const key = sessionStorage.getItem(KEY);
  document.getElementById('nav').hidden = !key;
  document.getElementById('logout').hidden = !key;
  if (!key) return loginPage();
  const { parts, q } = route();
  for (const a of document.querySelectorAll('nav a')) {
    const here = a.getAttribute('href').slice(2);
    a.toggleAttribute('aria-current', parts[0] === here || (here === 'users' && ['user', 'memory', 'conversation'].includes(parts[0])));
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  show(h('p', { class: 'muted', text: '…' }));
  try {
    switch (parts[0]) {
      case 'user': return await userPage(parts[1], q);
      case 'memory': return await memoryPage(parts[1], q);
      case 'conversation': return await conversationPage(parts[1], parts[2], q);
      case 'search': return await searchPage(q);
      case 'kb': return await kbPage(q);
      case 'server': return await serverPage();
      default: return await usersPage(q);
    }
  } catch (e) {
    if (e.status === 401) return loginPage(e);
    show(errorBox(e));
  }
}

function translateStatic() {
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  document.getElementById('lang').textContent = lang === 'zh' ? 'English' : '中文';
}

// ---------- pages ----------
function loginPage(err) {
  const input = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, 'aria-label': t('API key') });
  const msg = h('div');
  if (err) msg.append(errorBox(new ApiError(t('The key was refused'), err.code)));
  const form = h('form', {
    class: 'panel login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      try {
        await api('get/users', { page: 1, size: 1 });
        if (!location.hash || location.hash === '#/login') location.hash = '#/users';
        else render();
      } catch (e) {
        sessionStorage.removeItem(KEY);
        msg.replaceChildren(errorBox(e.status === 401 ? new ApiError(t('The key was refused'), e.code) : e));
      }
    },
  },
  h('h1', { text: 'memos' }),
  h('p', { class: 'muted', text: t('Enter the project\'s API key. It is kept in this tab only.') }),
  h('label', {}, t('API key'), input),
  h('p', {}, h('button', { class: 'primary', type: 'submit', id: 'login', text: t('Open') })),
  msg);
  document.getElementById('nav').hidden = true;
  show(form);
  input.focus();
}

function pager(current, total, size, go) {
  const pages = Math.max(1, Math.ceil(total / size));
  return h('div', { class: 'pager' },
    h('button', { type: 'button', disabled: current <= 1, onclick: () => go(current - 1), text: `← ${t('Previous')}` }),
    h('span', { class: 'muted', text: lang === 'zh' ? `第 ${current} / ${pages} 页，共 ${total} 条` : `Page ${current} of ${pages} · ${total} items` }),
    h('button', { type: 'button', disabled: current >= pages, onclick: () => go(current + 1), text: `${t('Next')} →` }));
}

async function usersPage(q) {
  const page = Number(q.get('page')) || 1;
  const d = await api('get/users', { page, size: PAGE });
  const rows = d.user_detail_list.map((u) => {
    const kind = u.knowledgebase_id ? t('Knowledge base') : u.agent_id ? t('Agent') : t('User');
    const name = u.user_id ?? u.agent_id ?? u.knowledgebase_id;
    const target = u.knowledgebase_id ? href(['kb']) : u.agent_id ? href(['user', name], { agent: 1 }) : href(['user', name]);
    return h('tr', {}, h('td', {}, link(target, name)), h('td', { text: kind }),
      h('td', { class: 'num', text: u.memory_count }), h('td', { text: fmtTime(u.last_update_time) }));
  });
  const jump = h('input', { id: 'open-user', placeholder: 'user_id', 'aria-label': t('Open user') });
  show(
    h('h1', { text: t('Users') }),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); if (jump.value.trim()) location.hash = href(['user', jump.value.trim()]); } },
      jump, h('button', { type: 'submit', text: t('Open user') })),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { id: 'users' },
        h('thead', {}, h('tr', {}, [t('User'), t('Kind'), t('Memories'), t('Last activity')].map((x) => h('th', { text: x })))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted', text: t('No users yet.') }),
    pager(page, d.total, PAGE, (p) => { location.hash = href(['users'], { page: p }); }));
}

// The subject of a request: a user, or an agent's own memory.
const subject = (id, q) => (q.get('agent') ? { agent_id: id } : { user_id: id });

function memoryFilter(q) {
  const and = [];
  if (q.get('type')) and.push({ memory_type: q.get('type') });
  if (q.get('tag')) and.push({ tags: { contains: q.get('tag') } });
  const range = {};
  if (q.get('from')) range.gte = q.get('from');
  if (q.get('to')) range.lte = `${q.get('to')}T23:59:59.999Z`;
  if (Object.keys(range).length) and.push({ memory_time: range });
  return and.length ? { and } : undefined;
}

async function userPage(user, q) {
  const page = Number(q.get('page')) || 1;
  const status = q.get('status') ? q.get('status').split(',') : undefined;
  const body = { ...subject(user, q), page, size: PAGE, filter: memoryFilter(q), include_preference: false };
  if (status) body.status = status;
  const agent = Boolean(q.get('agent'));
  const [d, prof, convs] = await Promise.all([
    api('get/memory', body),
    agent ? null : api('get/profile', { user_id: user }),
    agent ? null : api('get/conversations', { user_id: user, page: 1, size: PAGE }),
  ]);
  const keep = Object.fromEntries(q.entries());
  const go = (changes) => { location.hash = href(['user', user], { ...keep, ...changes }); };

  const typeSel = h('select', { id: 'f-type' }, ['', 'LongTermMemory', 'UserMemory', 'ToolTrajectoryMemory'].map((x) =>
    h('option', { value: x, selected: q.get('type') === x, text: x || t('Any') })));
  const tagIn = h('input', { id: 'f-tag', value: q.get('tag') || '', size: 12 });
  const fromIn = h('input', { id: 'f-from', type: 'date', value: q.get('from') || '' });
  const toIn = h('input', { id: 'f-to', type: 'date', value: q.get('to') || '' });
  const chosen = new Set(status || ['activated', 'archived']);
  const boxes = ['activated', 'archived', 'deleted'].map((s) => h('input', { type: 'checkbox', id: `f-${s}`, value: s, checked: chosen.has(s) }));
  const filters = h('form', {
    class: 'panel row', id: 'filters',
    onsubmit: (e) => {
      e.preventDefault();
      const st = boxes.filter((b) => b.checked).map((b) => b.value).join(',');
      go({ page: 1, type: typeSel.value, tag: tagIn.value.trim(), from: fromIn.value, to: toIn.value, status: st === 'activated,archived' ? '' : st });
    },
  },
  h('label', {}, t('Type'), typeSel), h('label', {}, t('Tag'), tagIn),
  h('label', {}, t('From'), fromIn), h('label', {}, t('To'), toIn),
  h('fieldset', { class: 'row' }, h('legend', { class: 'muted', text: t('Status') }),
    boxes.map((b) => h('label', { class: 'inline' }, b, b.value))),
  h('button', { type: 'submit', class: 'primary', text: t('Apply') }));

  const rows = d.memory_detail_list.map((m) => h('tr', {},
    h('td', {}, h('span', { class: 'badge', text: m.memory_type })),
    h('td', {}, link(href(['memory', m.id], { user, ...(q.get('agent') ? { agent: 1 } : {}) }), m.memory_key || m.id)),
    h('td', { class: 'value', text: m.memory_value }),
    h('td', {}, tags(m.tags)),
    h('td', { text: fmtIso(m.memory_time) }),
    h('td', {}, statusBadge(m.status))));

  // The profile: the user's standing facts, grouped by topic.
  const profile = prof && prof.profile.length
    ? h('section', { class: 'panel' }, h('h2', { text: t('Profile') }),
      h('dl', { class: 'kv', id: 'profile' }, prof.profile.flatMap((topic) => [
        h('dt', { text: topic.memory_key }),
        h('dd', {}, topic.memory_detail_list.map((it) => h('div', {}, link(href(['memory', it.id], { user }), it.memory_value)))),
      ])))
    : null;
  const delUser = h('button', {
    type: 'button', class: 'danger', id: 'delete-user', text: t('Delete this user'),
    onclick: async () => {
      const sure = await confirmDialog(lang === 'zh'
        ? `这将彻底删除 ${user} 的全部 ${d.total} 条记忆、它们的历史和对话记录，无法恢复。`
        : `This erases ${user} for good: all ${d.total} memories, their history and the chat log. It cannot be undone.`, t('Delete a whole user'));
      if (!sure) return;
      try { await api('delete/memory', subject(user, q)); location.hash = href(['users']); } catch (e) { view().prepend(errorBox(e)); }
    },
  });
  show(
    h('h1', {}, `${q.get('agent') ? t('Agent') : t('User')}: `, h('span', { class: 'mono', text: user })),
    filters,
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { id: 'memories' },
        h('thead', {}, h('tr', {}, [t('Type'), t('Key'), t('Value'), t('Tags'), t('Memory time'), t('Status')].map((x) => h('th', { text: x })))),
        h('tbody', {}, rows)))
      : h('p', { class: 'muted', text: t('No memories match.') }),
    pager(page, d.total, PAGE, (p) => go({ page: p })),
    profile,
    convs && convs.total
      ? h('section', { class: 'panel' }, h('h2', {}, t('Conversations'), h('span', { class: 'muted', text: ` · ${convs.total}` })),
        h('div', { class: 'table-wrap' }, h('table', { id: 'conversations' },
          h('thead', {}, h('tr', {}, [t('Conversation'), t('Messages'), t('From'), t('To')].map((x) => h('th', { text: x })))),
          h('tbody', {}, convs.conversation_detail_list.map((c) => h('tr', {},
            h('td', {}, link(href(['conversation', user, c.conversation_id]), c.conversation_id)),
            h('td', { class: 'num', text: c.message_count }),
            h('td', { text: fmtIso(c.first_chat_time) }),
            h('td', { text: fmtIso(c.last_chat_time) })))))))
      : null,
    h('p', {}, link(href(['search'], { user }), `${t('Search')} →`)),
    h('p', {}, delUser));
}

async function memoryPage(id, q) {
  const user = q.get('user');
  const who = user ? subject(user, q) : {};
  const d = await api('get/history', { memory_id: id, ...who });
  const m = d.memory;
  const owner = m.user_id || user;
  // Each change records the text before it; the text after is the next change's "before",
  // or the current value for the newest.
  const changes = d.history.map((c, i) => ({ ...c, after: i + 1 < d.history.length ? d.history[i + 1].before : m.memory_value }));
  const timeline = changes.length
    ? h('ol', { class: 'timeline', id: 'history' }, changes.map((c) => h('li', {},
      h('div', {}, h('span', { class: 'badge', text: c.kind }), ' ', h('span', { class: 'muted', text: fmtIso(c.time) }),
        c.note ? h('span', { text: ` · ${c.note}` }) : null,
        c.related_id ? h('span', {}, ' · ', link(href(['memory', c.related_id], { user: owner }), c.related_id)) : null),
      c.before !== null && c.before !== undefined
        ? h('div', { class: 'diff' }, h('div', {}, h('div', { class: 'muted', text: t('Before') }), c.before),
          h('div', {}, h('div', { class: 'muted', text: t('After') }), c.after))
        : null)))
    : h('p', { class: 'muted', text: t('No changes yet.') });
  const related = [...new Set(d.history.map((c) => c.related_id).filter(Boolean))];

  const value = h('textarea', { id: 'e-value', text: m.memory_value });
  const key = h('input', { id: 'e-key', value: m.memory_key, size: 40 });
  const tagIn = h('input', { id: 'e-tags', value: (m.tags || []).join(', '), size: 40 });
  const st = h('select', { id: 'e-status' }, ['activated', 'archived'].map((s) => h('option', { value: s, selected: m.status === s, text: s })));
  const msg = h('div', { role: 'status' });
  const edit = h('form', {
    class: 'panel', id: 'edit',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { memory_id: id, user_id: owner };
      if (value.value !== m.memory_value) body.memory_value = value.value;
      if (key.value !== m.memory_key) body.memory_key = key.value;
      const newTags = tagIn.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (newTags.join('\u0000') !== (m.tags || []).join('\u0000')) body.tags = newTags;
      if (st.value !== m.status) body.status = st.value;
      try { await api('update/memory', body); await memoryPage(id, q); view().prepend(h('p', { class: 'notice', role: 'status', text: t('Saved.') })); } catch (err) { msg.replaceChildren(errorBox(err)); }
    },
  },
  h('h2', { text: t('Edit') }),
  h('label', {}, t('Value'), value),
  h('div', { class: 'row' }, h('label', {}, t('Key'), key), h('label', {}, t('Tags'), tagIn), h('label', {}, t('Status'), st),
    h('button', { type: 'submit', class: 'primary', id: 'save', text: t('Save') })),
  msg);
  const del = (hard) => async () => {
    const text = hard
      ? (lang === 'zh' ? `彻底删除这条记忆及其历史，无法恢复：\n“${m.memory_value}”` : `This removes the memory and its history for good:\n“${m.memory_value}”`)
      : (lang === 'zh' ? `软删除这条记忆：它不再被搜索或列出，历史保留：\n“${m.memory_value}”` : `This soft-deletes the memory: it is no longer searched or listed; its history is kept:\n“${m.memory_value}”`);
    if (!(await confirmDialog(text, hard ? t('Hard delete') : t('Soft delete')))) return;
    try {
      await api('delete/memory', { memory_ids: [id], user_id: owner, hard });
      location.hash = href(['user', owner]);
    } catch (err) { msg.replaceChildren(errorBox(err)); }
  };
  show(
    h('h1', { text: m.memory_key || m.id }),
    h('div', { class: 'grid' },
      h('section', { class: 'panel' },
        h('p', { id: 'm-value', class: 'value', text: m.memory_value }),
        h('dl', { class: 'kv' },
          h('dt', { text: 'id' }), h('dd', { class: 'mono', text: m.id }),
          h('dt', { text: t('User') }), h('dd', {}, owner ? link(href(['user', owner]), owner) : ''),
          h('dt', { text: t('Type') }), h('dd', { text: m.memory_type }),
          h('dt', { text: t('Status') }), h('dd', {}, statusBadge(m.status)),
          h('dt', { text: t('Memory time') }), h('dd', { text: fmtIso(m.memory_time) }),
          h('dt', { text: t('Tags') }), h('dd', {}, tags(m.tags)),
          h('dt', { text: t('Confidence') }), h('dd', { text: num(m.confidence, 2) }),
          h('dt', { text: t('Created') }), h('dd', { text: fmtTime(m.create_time) }),
          h('dt', { text: t('Updated') }), h('dd', { text: fmtTime(m.update_time) }))),
      h('section', { class: 'panel' }, h('h2', { text: t('Sources') }),
        m.sources && m.sources.length
          ? h('ul', { id: 'sources' }, m.sources.map((s) => h('li', {},
            h('span', { class: 'muted', text: `${fmtIso(s.chat_time)} · ${s.role}${s.name ? ` (${s.name})` : ''} · ` }),
            owner ? link(href(['conversation', owner, s.conversation_id], { focus: s.message_id }), s.conversation_id) : s.conversation_id)))
          : h('p', { class: 'muted', text: t('none') }),
        related.length ? [h('h2', { text: t('Related') }), h('ul', { id: 'related' }, related.map((r) => h('li', {}, link(href(['memory', r], { user: owner }), r))))] : null)),
    h('section', { class: 'panel' }, h('h2', { text: t('History') }), timeline),
    m.status !== 'deleted' ? edit : null,
    h('div', { class: 'row' },
      m.status !== 'deleted' ? h('button', { type: 'button', class: 'danger', id: 'soft-delete', onclick: del(false), text: t('Soft delete') }) : null,
      h('button', { type: 'button', class: 'danger', id: 'hard-delete', onclick: del(true), text: t('Hard delete') })));
}

async function conversationPage(user, conv, q) {
  const d = await api('get/message', { user_id: user, conversation_id: conv, message_limit_number: 50 });
  const focus = q.get('focus');
  // The API answers in chat order: newest last.
  const list = h('ol', { class: 'chat', id: 'chat' }, d.message_detail_list.map((m) => h('li', {
    class: `${m.role}${m.message_id === focus ? ' focus' : ''}`, id: `msg-${m.message_id}`,
  }, h('div', { class: 'muted', text: `${m.role}${m.name ? ` (${m.name})` : ''} · ${fmtIso(m.chat_time)}` }), h('div', { text: m.content }))));
  show(h('h1', {}, `${t('Conversation')}: `, h('span', { class: 'mono', text: conv })),
    h('p', {}, link(href(['user', user]), `← ${user}`)), list);
  if (focus) document.getElementById(`msg-${focus}`)?.scrollIntoView({ block: 'center' });
}

async function searchPage(q) {
  const user = h('input', { id: 's-user', value: q.get('user') || '', required: true });
  const query = h('input', { id: 's-query', value: q.get('query') || '', size: 40, required: true });
  const conv = h('input', { id: 's-conv', value: q.get('conv') || '' });
  const asOf = h('input', { id: 's-asof', type: 'datetime-local', value: q.get('asof') || '' });
  const limit = h('input', { id: 's-limit', type: 'number', min: 1, max: 100, value: q.get('limit') || 10 });
  const filter = h('textarea', { id: 's-filter', placeholder: '{"and": [{"tags": {"contains": "food"}}]}', text: q.get('filter') || '' });
  const out = h('div', { id: 'results' });
  const form = h('form', {
    class: 'panel',
    onsubmit: (e) => {
      e.preventDefault();
      location.hash = href(['search'], { user: user.value.trim(), query: query.value, conv: conv.value.trim(), asof: asOf.value, limit: limit.value, filter: filter.value.trim() });
    },
  },
  h('div', { class: 'row' }, h('label', {}, t('User'), user), h('label', {}, t('Query'), query),
    h('label', {}, t('Conversation'), conv), h('label', {}, t('As of'), asOf), h('label', {}, t('Limit'), limit)),
  h('label', {}, t('Filter (JSON)'), filter),
  h('p', {}, h('button', { type: 'submit', class: 'primary', id: 'run-search', text: t('Search') })));
  show(h('h1', { text: t('Search') }), form, out);
  if (!q.get('user') || !q.get('query')) return;
  const body = {
    user_id: q.get('user'), query: q.get('query'), memory_limit_number: Number(q.get('limit')) || 10,
    explain: true, include_preference: true,
  };
  if (q.get('conv')) body.conversation_id = q.get('conv');
  if (q.get('asof')) body.query_time = new Date(q.get('asof')).toISOString();
  try {
    if (q.get('filter')) body.filter = JSON.parse(q.get('filter'));
  } catch (e) { out.replaceChildren(errorBox(new ApiError(`filter: ${e.message}`))); return; }
  let d;
  try { d = await api('search/memory', body); } catch (e) { out.replaceChildren(errorBox(e)); return; }
  const sig = (s) => (s ? `#${s.rank} · ${num(s.score)}` : '—');
  const rows = d.memory_detail_list.map((m, i) => {
    const x = m.explain || {};
    return h('tr', {},
      h('td', { class: 'num', text: i + 1 }),
      h('td', { class: 'num relativity', text: num(m.relativity) }),
      h('td', { class: 'value' }, link(href(['memory', m.id], { user: q.get('user') }), m.memory_value),
        x.outdated_by ? h('div', { class: 'muted', text: t('Outdated: what it said was superseded; the replacement ranks above it') }) : null,
        x.replaces ? h('div', { class: 'muted', text: t('Current fact, placed above the outdated turn') }) : null,
        x.in_context ? h('div', { class: 'muted', text: t('Also found by the earlier turns of the query') }) : null),
      h('td', {}, h('span', { class: 'badge', text: m.memory_type })),
      h('td', { class: 'num', text: sig(x.lexical) }),
      h('td', { class: 'num', text: sig(x.dense) }),
      h('td', { text: x.date_window ? `${x.date_window[0].slice(0, 10)} – ${x.date_window[1].slice(0, 10)}${x.in_window ? ` ✓ ${t('in window')}` : ''}` : '—' }),
      h('td', { class: 'num', text: x.conversation_boost && x.conversation_boost !== 1 ? `×${num(x.conversation_boost, 2)}` : '—' }),
      h('td', { class: 'num', text: x.fused_score === undefined ? '' : num(x.fused_score, 4) }));
  });
  const prefs = d.preference_detail_list || [];
  out.replaceChildren(
    h('div', { class: 'table-wrap' }, h('table', { id: 'search-results' },
      h('thead', {}, h('tr', {}, ['#', t('Relativity'), t('Memory'), t('Type'), t('Lexical'), t('Dense'), t('Date window'), t('Boost'), t('Fused')].map((x) => h('th', { text: x })))),
      h('tbody', {}, rows))),
    h('section', { class: 'panel' }, h('h2', { text: t('Preferences') }),
      prefs.length
        ? h('ul', { id: 'preferences' }, prefs.map((p) => h('li', {}, h('span', { class: 'badge', text: `${p.preference_type} · ${p.polarity}` }), ' ', p.preference, h('span', { class: 'muted', text: ` (${num(p.relativity)})` }))))
        : h('p', { class: 'muted', text: t('none') }),
      h('h2', { text: t('Preference note') }),
      h('pre', { class: 'mono prewrap', id: 'preference-note', text: d.preference_note || '' })));
}

async function kbPage() {
  const users = await api('get/users', { page: 1, size: 50 });
  const bases = users.user_detail_list.filter((u) => u.knowledgebase_id);
  if (!bases.length) return show(h('h1', { text: t('Knowledge bases') }), h('p', { class: 'muted', text: t('No knowledge bases yet.') }));
  const sections = await Promise.all(bases.map(async (b) => {
    const f = await api('get/knowledgebase-file', { knowledgebase_id: b.knowledgebase_id, page: 1, page_size: 50 });
    const files = f.file_detail_list;
    return h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'mono', text: b.knowledgebase_id }), h('span', { class: 'muted', text: ` · ${b.memory_count} ${t('Chunks')}` })),
      h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, [t('Name'), t('Type'), t('Size'), t('Status'), t('Chunks'), t('Reason'), t('Updated')].map((x) => h('th', { text: x })))),
        h('tbody', {}, files.map((x) => h('tr', {}, h('td', { text: x.name }), h('td', { text: x.type || '' }),
          h('td', { class: 'num', text: `${num(x.sizeMB, 2)} MB` }), h('td', {}, statusBadge(String(x.status).toLowerCase())),
          h('td', { class: 'num', text: x.chunks }), h('td', { text: x.reason || '' }), h('td', { text: fmtTime(x.update_time) })))))));
  }));
  show(h('h1', { text: t('Knowledge bases') }), sections);
}

async function serverPage() {
  const r = await fetch('/health');
  const s = await r.json();
  const llm = s.extraction && s.extraction.llm;
  show(h('h1', { text: t('Server') }),
    h('section', { class: 'panel' }, h('dl', { class: 'kv', id: 'server' },
      h('dt', { text: t('Version') }), h('dd', { text: s.version }),
      h('dt', { text: t('Store') }), h('dd', { text: s.store }),
      h('dt', { text: t('Embedding model') }), h('dd', { text: s.search && s.search.dense }),
      h('dt', { text: t('Embedding backlog') }), h('dd', { id: 'backlog', text: s.embedding_backlog }),
      h('dt', { text: t('LLM') }), h('dd', { text: typeof llm === 'string' ? llm : `${llm.model} · ${llm.base_url}` }),
      typeof llm === 'object' ? [h('dt', { text: t('LLM usage') }), h('dd', {}, h('code', { text: JSON.stringify(llm.usage) }))] : null)));
}

// ---------- wiring ----------
function applyTheme() {
  const th = localStorage.getItem('memos.theme');
  if (th) document.documentElement.dataset.theme = th; else delete document.documentElement.dataset.theme;
}
window.addEventListener('hashchange', () => { render(); view().focus({ preventScroll: true }); });
window.addEventListener('DOMContentLoaded', () => {
  applyTheme();
  document.getElementById('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    localStorage.setItem('memos.lang', lang);
    render();
  });
  document.getElementById('theme').addEventListener('click', () => {
    const dark = document.documentElement.dataset.theme === 'dark'
      || (!document.documentElement.dataset.theme && matchMedia('(prefers-color-scheme: dark)').matches);
    localStorage.setItem('memos.theme', dark ? 'light' : 'dark');
    applyTheme();
  });
  document.getElementById('logout').addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    location.hash = '#/login';
    render();
  });
  render();
});
