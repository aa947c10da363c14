// The dashboard in headless Chromium, against the controller that
// tests/dashboard_browser.rs started (its URL, a user, a deployed app and
// that user's API token come in the environment). Exits non-zero at the
// first failed check; writes a screenshot of every page.
import { chromium } from "playwright-core";
import path from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const URL = env("DASHBOARD_URL");
const USER = env("DASHBOARD_USER");
const PASSWORD = env("DASHBOARD_PASSWORD");
const APP = env("DASHBOARD_APP");
const OTHER_APP = env("DASHBOARD_OTHER_APP");
const SECRET = env("DASHBOARD_SECRET");
const TOKEN = env("DASHBOARD_TOKEN");
const SHOTS = env("DASHBOARD_SCREENSHOTS");

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

function step(text) {
  console.log(`- ${text}`);
}

// The API, as the CLI would call it.
async function api(method, pathname, body) {
  const response = await fetch(`${URL}${pathname}`, {
    method,
    headers: { Authorization: `token ${TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, text };
}

const rows = (page, type) => page.locator(`#processes tbody tr[data-type="${type}"]`);

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

const browser = await chromium.launch({
  executablePath: env("DASHBOARD_CHROMIUM"),
  headless: true,
  args: ["--no-sandbox"],
});
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // A script error or a blocked resource (the CSP) is a failure.
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // Pages answered with a 4xx on purpose (a refusal) are logged as
    // failed loads; those are checked by their status instead.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    if (response.request().resourceType() !== "document" && response.status() >= 400) {
      problems.push(`${response.status()} for ${response.url()}`);
    }
  });

  step("signing in with the keyboard");
  await page.goto(`${URL}/dashboard/`);
  check(page.url().endsWith("/dashboard/login"), `redirected to sign in, at ${page.url()}`);
  await shot(page, "login");
  // A wrong password gets the API's message.
  await page.fill("#username", USER);
  await page.fill("#password", "not-the-password");
  await page.click("button[type=submit]:has-text('Sign in')");
  await page.locator("[role=alert]").waitFor();
  check(
    (await page.locator("[role=alert]").textContent()).includes("Unable to log in with provided credentials."),
    "a wrong password shows the API's message",
  );
  await page.focus("#username");
  await page.keyboard.type(USER);
  await page.keyboard.press("Tab");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${URL}/dashboard/`);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "drycc_session");
  check(session && session.httpOnly && session.sameSite === "Strict", `an HttpOnly, SameSite=Strict session cookie: ${JSON.stringify(session)}`);

  step("the apps the user can see");
  const apps = await page.locator("#apps tbody tr").allTextContents();
  check(apps.some((row) => row.includes(APP)), `${APP} is listed: ${apps}`);
  check(!apps.some((row) => row.includes(OTHER_APP)), `${OTHER_APP} (another user's) is not listed`);
  await shot(page, "apps");

  step("the app's processes are listed");
  await page.click(`#apps a:has-text("${APP}")`);
  await page.waitForURL(`${URL}/dashboard/apps/${APP}`);
  await rows(page, "web").first().waitFor();
  check((await rows(page, "web").count()) === 1, "one web process");
  const cells = await rows(page, "web").first().locator("td").allTextContents();
  check(cells[1] === "web" && cells[2].startsWith("up") && cells[3].startsWith("v"), `name, type, state, release: ${cells}`);
  // The live stream is connected before anything changes.
  await page.locator("tbody[data-updates]").waitFor();
  await shot(page, "processes");

  step("a scale through the API appears on the open page within 2 s");
  const scaled = await api("POST", `/v2/apps/${APP}/scale/`, { web: 2 });
  check(scaled.status === 204, `API scale: ${scaled.status} ${scaled.text}`);
  const answered = Date.now();
  await page.waitForFunction(
    () => document.querySelectorAll('#processes tbody tr[data-type="web"]').length === 2,
    null,
    { timeout: 2000 },
  );
  step(`  shown ${Date.now() - answered} ms after the API answered`);
  await page.waitForFunction(() => document.getElementById("count-web").value === "2", null, { timeout: 2000 });
  check(page.url() === `${URL}/dashboard/apps/${APP}`, "without a reload");

  step("scaling from the page");
  await page.fill("#count-web", "1");
  await page.click('form.scale:has(input[value="web"]) button');
  await page.waitForURL(`${URL}/dashboard/apps/${APP}?done=scaled`);
  check((await page.locator("[role=status]").textContent()) === "Scaled.", "the page says it scaled");
  const web = await api("GET", `/v2/apps/${APP}/pods/web/`);
  check(JSON.parse(web.text).count === 1, `the API sees one web process: ${web.text}`);
  await page.waitForFunction(() => document.querySelectorAll('#processes tbody tr[data-type="web"]').length === 1);

  step("restarting a process from the page replaces it");
  const before = await rows(page, "web").first().getAttribute("data-name");
  await rows(page, "web").first().locator("button:has-text('Restart')").click();
  await page.waitForURL(`${URL}/dashboard/apps/${APP}?done=restarted`);
  await page.waitForFunction(
    (old) => {
      const web = document.querySelectorAll('#processes tbody tr[data-type="web"]');
      return web.length === 1 && web[0].dataset.name !== old;
    },
    before,
  );

  step("the last log lines, following");
  await page.click('nav a:has-text("Logs")');
  await page.waitForURL(`${URL}/dashboard/apps/${APP}/logs`);
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("(v"));
  const more = await api("POST", `/v2/apps/${APP}/scale/`, { sleeper: 1 });
  check(more.status === 204, `API scale of sleeper: ${more.status} ${more.text}`);
  await page.waitForFunction(() => /sleeper[^\n]*sleeping/.test(document.getElementById("log").textContent), null, { timeout: 15000 });
  await shot(page, "logs");

  step("releases, with rollback");
  await page.click('nav a:has-text("Releases")');
  await page.locator("#releases tbody tr").first().waitFor();
  check((await page.locator("#releases tbody tr").count()) >= 3, "the releases are listed");
  check((await page.locator('#releases button:has-text("Roll back to v2")').count()) === 1, "an older release can be rolled back to");
  await shot(page, "releases");

  step("config values are hidden until asked");
  await page.click('nav a:has-text("Config")');
  await page.locator("#config").waitFor();
  check(!(await page.content()).includes(SECRET), "the secret is not on the page");
  check((await page.locator("#config").textContent()).includes("SECRET_TOKEN"), "its key is");
  await shot(page, "config");
  await page.click("#show-values");
  await page.locator("#hide-values").waitFor();
  check((await page.locator("#config").textContent()).includes(SECRET), "shown when asked");
  await shot(page, "config-shown");

  step("setting an autoscale rule; the chart draws points from the history");
  // Two idle web processes: the rule will scale them down, a rescale the
  // chart marks.
  const two = await api("POST", `/v2/apps/${APP}/scale/`, { web: 2 });
  check(two.status === 204, `API scale: ${two.status} ${two.text}`);
  await page.click('nav a:has-text("Limits & autoscale")');
  await page.selectOption("#rule-type", "web");
  await page.fill("#rule-min", "1");
  await page.fill("#rule-max", "3");
  await page.fill("#rule-cpu", "50");
  await page.click("#set-rule button");
  await page.waitForURL(`${URL}/dashboard/apps/${APP}/autoscale?done=rule-set`);
  check((await page.locator("#rules tbody").textContent()).includes("50%"), "the rule is listed");
  await page.waitForFunction(
    () => Number(document.querySelector("figure.chart")?.dataset.points || 0) >= 2,
    null,
    { timeout: 30000 },
  );
  check((await page.locator("figure.chart canvas").count()) >= 1, "a chart is drawn");
  // The scale-down is decided, listed with its reason and marked.
  await page.waitForFunction(
    () => /scaling to 1/.test(document.querySelector("table.decisions tbody")?.textContent || ""),
    null,
    { timeout: 30000 },
  );
  const history = JSON.parse((await api("GET", `/v2/apps/${APP}/settings/autoscale/web/history`)).text);
  check(history.count >= 2, `the API has the history too: ${history.count}`);
  check(history.results.some((r) => r.rescaled && r.desired === 1), "a rescale to 1 in the history");
  await page.locator("figure.chart .plot").hover();
  await shot(page, "autoscale");

  step("a refused scale shows the API's message");
  await page.click('nav a:has-text("Processes")');
  await page.fill("#count-web", "2");
  await page.click('form.scale:has(input[value="web"]) button');
  await page.locator("[role=alert]").waitFor();
  const refusal = await page.locator("[role=alert]").textContent();
  const direct = await api("POST", `/v2/apps/${APP}/scale/`, { web: 2 });
  check(direct.status === 409, `the API refuses too: ${direct.status}`);
  check(refusal === JSON.parse(direct.text).detail, `the same message: "${refusal}" vs ${direct.text}`);
  await shot(page, "refused-scale");

  step("readable at 320 px and in the dark");
  await page.setViewportSize({ width: 320, height: 800 });
  await page.goto(`${URL}/dashboard/apps/${APP}`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= 320, `no page-wide horizontal scroll at 320 px (${overflow})`);
  await shot(page, "processes-320");
  await page.emulateMedia({ colorScheme: "dark" });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${URL}/dashboard/apps/${APP}/autoscale`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  check(background === "rgb(18, 20, 23)", `dark background when the system prefers it: ${background}`);
  await page.waitForFunction(() => Number(document.querySelector("figure.chart")?.dataset.points || 0) >= 1);
  await shot(page, "autoscale-dark");
  await page.emulateMedia({ colorScheme: "light" });

  step("another user's app is not found");
  const other = await page.goto(`${URL}/dashboard/apps/${OTHER_APP}`);
  check(other.status() === 404, `status ${other.status()}`);

  step("signing out ends the session");
  await page.goto(`${URL}/dashboard/`);
  await page.click('header button:has-text("Sign out")');
  await page.waitForURL(`${URL}/dashboard/login`);
  await page.goto(`${URL}/dashboard/apps/${APP}`);
  check(page.url().endsWith("/dashboard/login"), "pages ask to sign in again");
  // The session's token is gone: replaying the old cookie gets nothing.
  const replay = await fetch(`${URL}/dashboard/apps/${APP}`, {
    headers: { Cookie: `drycc_session=${session.value}` },
    redirect: "manual",
  });
  check(replay.status === 303, `the old cookie is refused: ${replay.status}`);

  check(problems.length === 0, `no script errors: ${problems.join("; ")}`);
  console.log("dashboard: all checks passed");
} catch (error) {
  failed = true;
  console.error(error.stack || String(error));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
