// The Tessera web console: plain browser JavaScript, no build step. It signs in once with an
// access key and secret (the gateway answers with an HttpOnly session cookie) and then uses
//   /_tessera/console/api/status  the cluster status (the JSON `tessera admin status --json` prints)
//   /_tessera/console/s3/...      ordinary S3 requests made as the signed-in user
// Every value from the server reaches the page through textContent, never as HTML.
const BASE = '/_tessera/console';
const SVG = 'http://www.w3.org/2000/svg';
const REFRESH_MS = 3000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== false) node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function bytes(n) {
  if (n === undefined || n === null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) { n /= 1024; unit++; }
  return `${unit ? n.toFixed(1) : n} ${units[unit]}`;
}

function age(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : s < 172800 ? `${Math.round(s / 3600)}h ago` : `${Math.round(s / 86400)}d ago`;
}

function duration(seconds) {
  if (seconds === undefined || seconds === null) return 'unknown';
  return seconds < 90 ? `${seconds}s` : seconds < 5400 ? `${Math.round(seconds / 60)}m` : `${(seconds / 3600).toFixed(1)}h`;
}

function showMessage(text) {
  $('message').textContent = text;
}

// ------------------------------------------------------------------ requests

async function api(path, init = {}) {
  const response = await fetch(BASE + path, { ...init, headers: { 'x-tessera-console': '1', ...(init.headers ?? {}) } });
  if (response.status === 401) { showLogin(); throw new Error('signed out'); }
  return response;
}

/** An S3 request as the signed-in user; S3 errors come back as XML with a Code and Message. */
async function s3(method, path, body) {
  const response = await api(`/s3${path}`, { method, body });
  if (!response.ok) {
    const text = await response.text();
    const doc = new DOMParser().parseFromString(text, 'application/xml');
    const code = doc.querySelector('Code')?.textContent ?? response.status;
    throw new Error(`${method} ${path}: ${code} ${doc.querySelector('Message')?.textContent ?? ''}`);
  }
  return response;
}

async function s3Xml(path) {
  const text = await (await s3('GET', path)).text();
  return new DOMParser().parseFromString(text, 'application/xml');
}

const encodeKey = (key) => key.split('/').map(encodeURIComponent).join('/');

// ------------------------------------------------------------------ sign-in

function showLogin() {
  stopRefresh();
  $('app').hidden = true;
  $('login').hidden = false;
}

async function showApp(accessKeyId) {
  $('login').hidden = true;
  $('app').hidden = false;
  $('whoami').textContent = accessKeyId;
  selectView(location.hash.slice(1) || 'health');
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch(`${BASE}/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ accessKeyId: form.get('accessKeyId'), secretAccessKey: form.get('secretAccessKey') }),
  });
  if (!response.ok) {
    $('login-error').textContent = response.status === 429 ? 'Too many failed sign-ins: wait a minute.' : 'The access key or secret is wrong.';
    return;
  }
  event.target.reset();
  $('login-error').textContent = '';
  await showApp((await response.json()).accessKeyId);
});

$('logout').addEventListener('click', async () => {
  await fetch(`${BASE}/logout`, { method: 'POST', headers: { 'x-tessera-console': '1' } });
  showLogin();
});

// ------------------------------------------------------------------ views

let refreshTimer;
function stopRefresh() {
  clearInterval(refreshTimer);
  refreshTimer = undefined;
}

function selectView(name) {
  if (!['health', 'buckets', 'backups'].includes(name)) name = 'health';
  location.hash = name;
  for (const view of document.querySelectorAll('.view')) view.hidden = view.id !== `view-${name}`;
  for (const tab of document.querySelectorAll('.tab')) tab.classList.toggle('active', tab.dataset.view === name);
  stopRefresh();
  showMessage('');
  const load = { health: loadHealth, buckets: loadBuckets, backups: loadBackups }[name];
  const run = () => load().catch((err) => showMessage(err.message));
  run();
  if (name === 'health') refreshTimer = setInterval(run, REFRESH_MS);
}

for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => selectView(tab.dataset.view));

async function fetchStatus() {
  const response = await api('/api/status');
  if (!response.ok) throw new Error(`status: ${response.status}`);
  return response.json();
}

// ------------------------------------------------------------------ health

function conditionOf(node) {
  if (node.state === 'out') return 'out';
  if (!node.reachable) return 'down';
  if (node.slow && node.state === 'up') return 'slow';
  return node.state;
}

async function loadHealth() {
  const status = await fetchStatus();
  const up = status.nodes.filter((n) => n.reachable).length;
  const { dataShards, parityShards, writeQuorum } = status.erasure;
  $('summary').replaceChildren(
    el('span', { class: status.writeQuorumReachable ? 'ok' : 'bad' }, status.writeQuorumReachable ? 'Writable' : 'No write quorum'),
    ` · ${up} of ${status.nodes.length} nodes up · erasure ${dataShards}+${parityShards} (write quorum ${writeQuorum})`,
    ` · ${status.totals.objects} objects · ${bytes(status.totals.logicalBytes)} stored · map epoch ${status.mapEpoch}`,
  );
  drawTopology(status);
  drawCapacity(status);
  $('nodes').replaceChildren(
    el('tr', {}, ...['Node', 'State', 'Zone', 'Weight', 'Address', 'Used', 'Free', 'Shards', 'Heartbeat'].map((h) => el('th', {}, h))),
    ...status.nodes.map((n) => el('tr', { 'data-node': n.id, 'data-state': conditionOf(n) },
      el('td', {}, n.id), el('td', {}, el('span', { class: `state ${conditionOf(n)}` }, conditionOf(n))), el('td', {}, n.zone || '–'),
      el('td', {}, n.weight), el('td', {}, n.address), el('td', {}, bytes(n.usedBytes)), el('td', {}, bytes(n.freeBytes)),
      el('td', {}, n.shardCount ?? '–'), el('td', {}, age(n.lastHeartbeatMs)))),
  );
  drawProgress($('heal'), status.heal, 'versions', status.heal ? `${status.heal.shardsRebuilt} shards rebuilt` : '');
  drawProgress($('rebalance'), status.rebalance, 'versions', status.rebalance ? `${bytes(status.rebalance.bytesMoved)} moved` : '');
}

/** One box per zone, one circle per node coloured by its condition. */
function drawTopology(status) {
  const zones = new Map();
  for (const node of status.nodes) zones.set(node.zone || '(no zone)', [...(zones.get(node.zone || '(no zone)') ?? []), node]);
  const svg = $('topology');
  const boxWidth = 150;
  const perRow = 3;
  const rows = Math.max(...[...zones.values()].map((nodes) => Math.ceil(nodes.length / perRow)), 1);
  const boxHeight = 40 + rows * 52;
  const width = Math.max(zones.size, 1) * (boxWidth + 10);
  svg.setAttribute('viewBox', `0 0 ${width} ${boxHeight + 10}`);
  svg.setAttribute('width', String(width * 1.4));
  svg.replaceChildren(...[...zones.entries()].map(([zone, nodes], z) => {
    const x = z * (boxWidth + 10) + 5;
    return el('svg:g', { 'data-zone': zone },
      el('svg:rect', { x, y: 5, width: boxWidth, height: boxHeight, rx: 8, class: 'zone' }),
      el('svg:text', { x: x + 10, y: 24, class: 'zone-label' }, zone),
      ...nodes.map((node, i) => {
        const cx = x + 28 + (i % perRow) * 47;
        const cy = 58 + Math.floor(i / perRow) * 52;
        return el('svg:g', { 'data-node': node.id, 'data-state': conditionOf(node) },
          el('svg:title', {}, `${node.id} ${conditionOf(node)} ${node.address}`),
          el('svg:circle', { cx, cy, r: 16, class: `node ${conditionOf(node)}` }),
          el('svg:text', { x: cx, y: cy + 30, class: 'node-label' }, node.id));
      }));
  }));
}

function bar(fraction, label, kind = '') {
  const fill = el('div', { class: `fill ${kind}` });
  fill.style.width = `${Math.min(100, Math.max(0, fraction * 100)).toFixed(1)}%`;
  return el('div', { class: 'bar', title: label }, fill, el('span', {}, label));
}

function drawCapacity(status) {
  const rows = status.nodes.filter((n) => n.capacityBytes).map((n) => {
    const used = n.usedBytes / n.capacityBytes;
    return el('div', { class: 'capacity-row' }, el('span', { class: 'capacity-name' }, n.id),
      bar(used, `${bytes(n.usedBytes)} of ${bytes(n.capacityBytes)}`, used > 0.9 ? 'bad' : used > 0.75 ? 'warn' : ''));
  });
  const { rawUsedBytes, capacityBytes, freeBytes } = status.totals;
  $('capacity').replaceChildren(
    el('p', {}, `Raw ${bytes(rawUsedBytes)} used, ${bytes(freeBytes)} free`),
    usageChart(status.usageHistory),
    ...(capacityBytes ? [bar(rawUsedBytes / capacityBytes, `cluster ${((rawUsedBytes / capacityBytes) * 100).toFixed(1)}% used`)] : []),
    ...rows,
  );
}

/** Raw bytes used over the last hours (one sample a minute, kept by the gateway). */
function usageChart(history) {
  if (history.length < 2) return el('p', { class: 'muted' }, 'Usage history: collecting (one sample a minute)…');
  const width = 600;
  const height = 110;
  const top = Math.max(...history.map((s) => s.usedBytes), 1) * 1.25;
  const first = history[0].ms;
  const span = Math.max(history.at(-1).ms - first, 1);
  const point = (s) => `${(10 + ((s.ms - first) / span) * (width - 20)).toFixed(1)},${(height - 20 - (s.usedBytes / top) * (height - 30)).toFixed(1)}`;
  const line = history.map(point).join(' ');
  return el('svg:svg', { viewBox: `0 0 ${width} ${height}`, class: 'usage-chart', role: 'img', 'aria-label': 'raw bytes used over time' },
    el('svg:polygon', { points: `10,${height - 20} ${line} ${width - 10},${height - 20}`, class: 'usage-area' }),
    el('svg:polyline', { points: line, class: 'usage-line' }),
    el('svg:text', { x: 10, y: 12, class: 'tick' }, `${bytes(Math.round(top))}`),
    el('svg:text', { x: 10, y: height - 4, class: 'tick' }, new Date(first).toLocaleTimeString()),
    el('svg:text', { x: width - 10, y: height - 4, class: 'tick end' }, new Date(history.at(-1).ms).toLocaleTimeString()));
}

function drawProgress(target, progress, unit, extra = '') {
  if (!progress) { target.replaceChildren('not reported'); return; }
  const total = progress.pending + progress.done;
  const eta = progress.pending ? ` · ETA ${duration(progress.etaSeconds)}` : '';
  target.replaceChildren(
    bar(total ? progress.done / total : 1, `${progress.done} done, ${progress.pending} pending`),
    el('p', {}, `${progress.failed} failed${progress.ratePerSecond ? ` · ${progress.ratePerSecond.toFixed(1)} ${unit}/s` : ''}${eta}${extra ? ` · ${extra}` : ''}`),
  );
}

// ------------------------------------------------------------------ buckets and objects

let browsing = { bucket: undefined, prefix: '', token: undefined };

async function loadBuckets() {
  const doc = await s3Xml('/');
  const names = [...doc.querySelectorAll('Bucket > Name')].map((n) => n.textContent);
  $('bucket-list').replaceChildren(...names.map((name) =>
    el('li', {}, el('button', { class: name === browsing.bucket ? 'chip active' : 'chip', onclick: () => openBucket(name, '') }, name))));
  if (browsing.bucket) await listObjects(false);
}

$('create-bucket').addEventListener('submit', async (event) => {
  event.preventDefault();
  const name = new FormData(event.target).get('bucket').trim();
  try {
    await s3('PUT', `/${encodeURIComponent(name)}`);
    event.target.reset();
    browsing = { bucket: name, prefix: '', token: undefined };
    await loadBuckets();
  } catch (err) { showMessage(err.message); }
});

async function openBucket(bucket, prefix) {
  browsing = { bucket, prefix, token: undefined };
  showMessage('');
  await loadBuckets().catch((err) => showMessage(err.message));
}

async function listObjects(append) {
  const { bucket, prefix } = browsing;
  const query = new URLSearchParams({ 'list-type': '2', delimiter: '/', prefix, 'max-keys': '200' });
  if (append && browsing.token) query.set('continuation-token', browsing.token);
  const doc = await s3Xml(`/${encodeURIComponent(bucket)}?${query}`);
  browsing.token = doc.querySelector('IsTruncated')?.textContent === 'true' ? doc.querySelector('NextContinuationToken')?.textContent : undefined;
  $('objects-card').hidden = false;
  $('objects-title').textContent = bucket;
  const parts = prefix.split('/').filter(Boolean);
  $('breadcrumb').replaceChildren(
    el('a', { href: '#buckets', onclick: (e) => { e.preventDefault(); void openBucket(bucket, ''); } }, bucket),
    ...parts.map((part, i) => ['/', el('a', { href: '#buckets', onclick: (e) => { e.preventDefault(); void openBucket(bucket, `${parts.slice(0, i + 1).join('/')}/`); } }, part)]),
  );
  const folders = [...doc.querySelectorAll('CommonPrefixes > Prefix')].map((p) => p.textContent);
  const objects = [...doc.querySelectorAll('Contents')].map((c) => ({
    key: c.querySelector('Key').textContent,
    size: Number(c.querySelector('Size')?.textContent ?? 0),
    modified: c.querySelector('LastModified')?.textContent ?? '',
  }));
  const rows = [
    ...folders.map((folder) => el('tr', { class: 'folder' },
      el('td', {}, el('a', { href: '#buckets', onclick: (e) => { e.preventDefault(); void openBucket(bucket, folder); } }, folder.slice(prefix.length))),
      el('td', {}, ''), el('td', {}, ''), el('td', {}, ''))),
    ...objects.map((o) => el('tr', { 'data-key': o.key },
      el('td', {}, o.key.slice(prefix.length)), el('td', {}, bytes(o.size)), el('td', {}, o.modified.replace('T', ' ').replace(/\.\d+Z$/, 'Z')),
      el('td', {},
        el('a', { class: 'button', href: downloadUrl(bucket, o.key), download: o.key.split('/').pop() }, 'Download'),
        el('button', { onclick: () => deleteObject(bucket, o.key) }, 'Delete')))),
  ];
  const header = el('tr', {}, ...['Name', 'Size', 'Modified', ''].map((h) => el('th', {}, h)));
  if (append) $('objects').append(...rows);
  else $('objects').replaceChildren(header, ...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4 }, 'empty'))]));
  $('more').hidden = !browsing.token;
}

function downloadUrl(bucket, key) {
  const name = key.split('/').pop();
  const disposition = `attachment; filename*=UTF-8''${encodeURIComponent(name)}`;
  return `${BASE}/s3/${encodeURIComponent(bucket)}/${encodeKey(key)}?response-content-disposition=${encodeURIComponent(disposition)}`;
}

async function deleteObject(bucket, key) {
  if (!confirm(`Delete ${key}?`)) return;
  try {
    await s3('DELETE', `/${encodeURIComponent(bucket)}/${encodeKey(key)}`);
    await listObjects(false);
  } catch (err) { showMessage(err.message); }
}

$('more').addEventListener('click', () => listObjects(true).catch((err) => showMessage(err.message)));

$('upload').addEventListener('submit', async (event) => {
  event.preventDefault();
  const files = event.target.elements.file.files;
  try {
    for (const file of files) {
      showMessage(`uploading ${file.name}…`);
      await s3('PUT', `/${encodeURIComponent(browsing.bucket)}/${encodeKey(browsing.prefix + file.name)}`, file);
    }
    showMessage('');
    event.target.reset();
    await listObjects(false);
  } catch (err) { showMessage(err.message); }
});

// ------------------------------------------------------------------ backups

let backups = [];

async function loadBackups() {
  backups = (await fetchStatus()).backups;
  if (!$('restore-time').value) $('restore-time').value = localInputValue(Date.now());
  drawTimelines();
}

function localInputValue(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}

$('restore-time').addEventListener('input', drawTimelines);

/** One line per disk from its first snapshot to now; the snapshot a restore to T uses is marked. */
function drawTimelines() {
  const target = $('timelines');
  if (!backups.length) { target.replaceChildren(el('p', {}, 'No backup repositories found.')); return; }
  const at = new Date($('restore-time').value).getTime() || Date.now();
  const start = Math.min(...backups.flatMap((d) => d.snapshots.map((s) => s.timeMs)));
  const end = Math.max(Date.now(), at);
  const span = Math.max(end - start, 1);
  const width = 800;
  const xOf = (ms) => 10 + ((ms - start) / span) * (width - 20);
  target.replaceChildren(...backups.map((disk) => {
    const chosen = [...disk.snapshots].reverse().find((s) => s.timeMs <= at);
    const svg = el('svg:svg', { viewBox: `0 0 ${width} 52`, class: 'timeline' },
      el('svg:line', { x1: 10, y1: 20, x2: width - 10, y2: 20, class: 'axis' }),
      el('svg:text', { x: 10, y: 48, class: 'tick' }, new Date(start).toLocaleString()),
      el('svg:text', { x: width - 10, y: 48, class: 'tick end' }, new Date(end).toLocaleString()),
      el('svg:line', { x1: xOf(at), y1: 4, x2: xOf(at), y2: 36, class: 'cursor' }),
      ...disk.snapshots.map((s) => el('svg:circle', { cx: xOf(s.timeMs), cy: 20, r: s === chosen ? 7 : 4, class: s === chosen ? 'snap chosen' : 'snap' },
        el('svg:title', {}, `${s.id} · ${new Date(s.timeMs).toISOString()}`))));
    const command = chosen
      ? `tessera restore --bucket ${disk.bucket} --disk ${disk.disk} --at ${new Date(at).toISOString()} --to /path/to/${disk.disk}.img`
      : 'no snapshot at or before this time';
    return el('div', { class: 'disk', 'data-disk': disk.disk },
      el('h3', {}, `${disk.disk} `, el('small', {}, `bucket ${disk.bucket} · ${disk.snapshots.length} snapshots · last ${age(disk.snapshots.at(-1)?.timeMs)}`)),
      svg,
      el('p', {}, chosen ? `Restore to this time uses snapshot ${chosen.id} (${new Date(chosen.timeMs).toLocaleString()}). On the host: ` : ''),
      el('code', {}, command));
  }));
}

// ------------------------------------------------------------------ start

const who = await fetch(`${BASE}/api/whoami`);
if (who.ok) await showApp((await who.json()).accessKeyId);
else showLogin();
