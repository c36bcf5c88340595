// The console's shell: who is signed in, the navigation, and which page the address shows.
import { ApiError, api, get, h, notice } from "./api.js";
import { agentsPage } from "./agents.js";
import { editorPage } from "./editor.js";
import { deployPage, inboxPage, refreshInboxCount } from "./deploy.js";
import { analyticsPage } from "./analytics.js";
import { galleryPage } from "./gallery.js";
import { billingPage } from "./billing.js";

const PAGES = [
  [/^#\/agents\/([0-9a-f-]+)$/, editorPage],
  [/^#\/agents(?:\?.*)?$/, agentsPage],
  [/^#\/deploy(?:\?.*)?$/, deployPage],
  [/^#\/inbox(?:\?.*)?$/, inboxPage],
  [/^#\/analytics(?:\?.*)?$/, analyticsPage],
  [/^#\/gallery(?:\?.*)?$/, galleryPage],
  [/^#\/billing(?:\?.*)?$/, billingPage],
];

const view = document.getElementById("view");
let session = null;

async function signedIn() {
  try {
    return await get("/me");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null;
    throw error;
  }
}

function showWho(me) {
  document.getElementById("who").textContent = `${me.owner.name} · ${me.owner.tier}`;
}

function showSignIn() {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  view.replaceChildren(document.getElementById("sign-in-page").content.cloneNode(true));
}

// Counts navigations: a page that finishes drawing after a newer navigation began is dropped.
let routing = 0;

async function route() {
  if (!session) return;
  const address = location.hash;
  // Addresses written elsewhere without the slash (Stripe's return URL: #billing?checkout=done).
  if (!address.startsWith("#/")) {
    location.replace(`#/${address.slice(1) || "agents"}`);
    return;
  }
  const match = PAGES.map(([pattern, page]) => [address.match(pattern), page]).find(([found]) => found);
  if (!match) {
    location.hash = "#/agents";
    return;
  }
  const [found, page] = match;
  const turn = ++routing;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", address.startsWith(link.getAttribute("href")));
  }
  // Set once the page has drawn: what a test (or a script) waits for after navigating.
  delete view.dataset.shown;
  const drawn = h("div", { class: "page" });
  try {
    // Each page reads the account afresh: a tier change shows at once.
    session.me = await get("/me");
    await page(drawn, session, ...found.slice(1));
  } catch (error) {
    drawn.replaceChildren(notice("error", error.message, "page-error"));
  }
  if (turn !== routing) return;
  showWho(session.me);
  view.replaceChildren(drawn);
  view.dataset.shown = address;
  refreshInboxCount(session);
}

export function go(address) {
  if (location.hash === address) route();
  else location.hash = address;
}

async function start() {
  const me = await signedIn();
  if (!me) {
    showSignIn();
    return;
  }
  session = { me };
  document.getElementById("nav").hidden = false;
  showWho(me);
  const signOut = document.getElementById("sign-out");
  signOut.hidden = false;
  signOut.onclick = async () => {
    await api("POST", "/auth/logout");
    session = null;
    showSignIn();
  };
  if (!location.hash) history.replaceState(null, "", "#/agents");
  window.addEventListener("hashchange", route);
  await route();
}

start().catch((error) => view.replaceChildren(notice("error", error.message)));
