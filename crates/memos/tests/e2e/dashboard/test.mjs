// The dashboard in a real browser: Debian's Chromium driven by Playwright (playwright-core,
// pinned in package-lock.json). Started by dashboard.rs, which serves memos, adds the data
// through the API and passes: base URL, the project's key, a second project's key, the
// user, and where to save screenshots. Every check throws with what it saw; the last line
// printed is one JSON object.
import { chromium } from 'playwright-core';

const [base, key, otherKey, user, shots] = process.argv.slice(2);
const seen = { screenshots: [] };
const check = (ok, what) => { if (!ok) throw new Error(`dashboard check failed: ${what}`); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // This machine has no network: without these Chromium keeps dialling Google's hosts.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
const page = await context.newPage();
const problems = [];
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error' && !/status of 401/.test(m.text())) problems.push(`console: ${m.text()}`); });
const shot = async (name) => {
  const path = `${shots}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  seen.screenshots.push(path);
};
const text = async (sel) => (await page.locator(sel).first().textContent()) ?? '';

async function login(k) {
  await page.fill('#key', k);
  await page.click('#login');
}

try {
  // A wrong key is refused and nothing is shown.
  await page.goto(`${base}/dashboard`);
  await page.waitForSelector('#key');
  await shot('01-login');
  await login('not-the-key');
  await page.waitForSelector('.login .error');
  check((await text('.login .error')).includes('refused'), 'a wrong key is refused');
  check(await page.locator('#users').count() === 0, 'no users behind a wrong key');

  // The right key: the project's users, with counts.
  await login(key);
  await page.waitForSelector('#users');
  check(!page.url().includes(key), 'the key never goes into the URL');
  check(await page.evaluate(() => sessionStorage.getItem('memos.key')) === key, 'the key is kept in session storage');
  const usersText = await text('#users');
  check(usersText.includes(user), `the user is listed: ${usersText}`);
  await shot('02-users');

  // A reload keeps the session; from a fresh page the first Tab reaches the skip link,
  // the next one the sections.
  await page.reload();
  await page.waitForSelector('#users');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.className) === 'skip', 'Tab reaches the skip link first');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  check(await page.evaluate(() => document.activeElement.getAttribute('href')) === '#/users', 'then the sections');

  // The user's memories, as added through the API.
  await page.click(`#users a:text-is("${user}")`);
  await page.waitForSelector('#memories');
  const table = await text('#memories');
  check(table.includes('hiking'), `memories added through the API are listed: ${table}`);
  check(table.includes('花生'), 'Chinese text is listed');
  seen.listed = await page.locator('#memories tbody tr').count();
  await page.waitForSelector('#profile');
  const convs = await text('#conversations');
  check(convs.includes('trip') && convs.includes('food'), `the user's conversations are listed: ${convs}`);
  await shot('03-user-memories');

  // One memory: its sources, its history (it was edited through the API).
  await page.click('#memories a:has-text("hiking")');
  await page.waitForSelector('#history');
  const history = await text('#history');
  check(history.includes('updated'), `the history shows the API's edit: ${history}`);
  check(await page.locator('#sources a').count() >= 1, 'the memory links to its source turns');
  await shot('04-memory');

  // Its source turn, inside the conversation.
  await page.click('#sources a');
  await page.waitForSelector('#chat li.focus');
  check((await text('#chat li.focus')).includes('hiking'), 'the source turn is the one highlighted');
  await shot('05-conversation');
  await page.goBack();
  await page.waitForSelector('#edit');

  // Edit it.
  await page.fill('#e-value', 'The user loves hiking in the Alps every summer.');
  await page.fill('#e-tags', 'hiking, alps');
  await page.click('#save');
  await page.waitForSelector('.notice');
  check((await text('#m-value')).includes('Alps'), 'the edit is shown');
  check((await page.locator('#history li').count()) >= 2, 'the edit joins the history');
  const memoryUrl = page.url();

  // Search: relativity and why each result ranked.
  await page.click('nav a[href="#/search"]');
  await page.fill('#s-user', user);
  await page.fill('#s-query', 'What outdoor sport does the user enjoy in summer?');
  await page.click('#run-search');
  await page.waitForSelector('#search-results tbody tr');
  const top = await text('#search-results tbody tr');
  const all = await text('#search-results tbody');
  check(all.includes('Alps'), `the edited memory is found, as edited: ${all}`);
  const rel = Number(await text('#search-results tbody tr .relativity'));
  check(rel > 0 && rel <= 1, `relativity shown: ${rel}`);
  check(/#\d+/.test(top), `each retriever's rank is shown: ${top}`);
  seen.top = top;
  await shot('06-search');
  // A fact that changed: the old turn is marked, the current fact sits above it.
  await page.fill('#s-query', 'Where does the user live?');
  await page.click('#run-search');
  await page.waitForSelector('#search-results tbody tr');
  await page.waitForFunction(() => document.querySelector('#results').textContent.includes('Outdated'));
  const moved = await text('#search-results tbody');
  check(moved.indexOf('Shanghai') < moved.indexOf('I live in Beijing'), `the current fact first: ${moved}`);

  // Soft delete, with a confirmation that says what goes; then it is gone from the list.
  await page.goto(memoryUrl);
  await page.waitForSelector('#soft-delete');
  await page.click('#soft-delete');
  await page.waitForSelector('#confirm[open]');
  check((await text('#confirm-text')).includes('Alps'), 'the confirmation names the memory');
  await shot('07-confirm-delete');
  await page.click('#confirm-ok');
  await page.waitForSelector('#memories');
  check(!(await text('#memories')).includes('Alps'), 'a deleted memory is gone from the list');
  // ...and shown again, marked deleted, when asked for by status.
  await page.uncheck('#f-activated');
  await page.uncheck('#f-archived');
  await page.check('#f-deleted');
  await page.click('#filters button[type=submit]');
  await page.waitForSelector('#memories .s-deleted');
  check((await text('#memories')).includes('Alps'), 'the deleted memory is listed under deleted');
  await shot('08-deleted');

  // Knowledge bases and the server.
  await page.click('nav a[href="#/kb"]');
  await page.waitForSelector('h1');
  await page.waitForFunction(() => !document.querySelector('main').textContent.includes('…'));
  seen.kb = await text('main');
  await shot('09-knowledge-bases');
  await page.click('nav a[href="#/server"]');
  await page.waitForSelector('#server');
  const server = await text('#server');
  check(server.includes('embedded'), `the server page names the store: ${server}`);
  await shot('10-server');

  // Chinese, dark, and a narrow window.
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('nav a').textContent === '用户');
  await page.click('#theme');
  await page.setViewportSize({ width: 420, height: 800 });
  await page.click('nav a[href="#/users"]');
  await page.waitForSelector('#users');
  await page.click(`#users a:text-is("${user}")`);
  await page.waitForSelector('#memories');
  await shot('11-narrow-dark-chinese');
  await page.click('#lang');
  await page.click('#theme');
  await page.setViewportSize({ width: 1280, height: 800 });

  // A second project's key sees only its own users, and nothing of the first's.
  await page.click('#logout');
  await page.waitForSelector('#key');
  await login(otherKey);
  await page.waitForSelector('#users, main p.muted');
  const others = await text('main');
  check(!others.includes(user), `another project does not see the user: ${others}`);
  await page.goto(`${base}/dashboard#/user/${encodeURIComponent(user)}`);
  await page.waitForSelector('#filters');
  check(await page.locator('#memories').count() === 0, 'another project sees none of the memories');
  await shot('12-other-project');

  check(problems.length === 0, problems.join('\n'));
  seen.ok = true;
} catch (e) {
  seen.ok = false;
  seen.error = String(e.stack || e);
  seen.problems = problems;
  try { await shot('failure'); } catch { /* the browser may be gone */ }
} finally {
  await browser.close();
}
console.log(JSON.stringify(seen));
process.exit(seen.ok ? 0 : 1);
