// The web app: reads where the services are, signs the person in, and shows the page of each
// role they hold (addresses: #/investigator, #/prosecutor[/item/ID], #/auditor[/item/ID]).

import { ApiError, EVIDENCE_ID, configure, sentenceOf } from "./api.js";
import { field, h, message, replace } from "./dom.js";
import { auditorPage } from "./auditor.js";
import { investigatorPage } from "./investigator.js";
import { beginSignIn, finishSignIn } from "./oidc.js";
import { itemPage, prosecutorPage } from "./prosecutor.js";
import { cleanToken, forgetToken, storeToken, storedToken, whoami } from "./session.js";

const ROLE_PAGES = [
  ["investigator", "Submit"],
  ["prosecutor", "Evidence"],
  ["auditor", "Custody log"],
];

const main = document.getElementById("main");
const who = document.getElementById("who");
const nav = document.getElementById("roles");
const app = { config: null, identity: null };

function signOut() {
  forgetToken();
  // A fresh page, at no item's address: nothing the person signed out saw stays in memory for
  // whoever signs in next in this tab.
  location.replace(location.pathname);
}

function showSignIn(notice) {
  const token = h("textarea", { rows: 4, autocomplete: "off", spellcheck: "false", class: "mono", required: true });
  const problems = h("div");
  const form = h(
    "form",
    {
      class: "stack",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        const cleaned = cleanToken(token.value);
        if (!cleaned) {
          replace(problems, message("error", "This does not look like a token: paste the whole token you were given (three parts separated by dots)."));
          token.setAttribute("aria-invalid", "true");
          token.focus();
          return;
        }
        await signIn(cleaned, problems);
      },
    },
    field("Token", token, "Paste the token you were given (for a one-machine setup: `custody token --sub NAME --role ROLE --case CASE`). It is kept in this tab only, until you sign out or close it."),
    problems,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  const provider = app.config.oidc
    ? h("div", { class: "stack" },
        h("button", {
          type: "button",
          class: "primary",
          onclick: async () => {
            try {
              await beginSignIn(app.config.oidc);
            } catch (err) {
              replace(problems, message("error", sentenceOf(err)));
            }
          },
        }, "Sign in with your organisation"),
        h("p", { class: "or" }, "or"))
    : null;
  replace(main, h("section", { class: "page sign-in", "aria-labelledby": "sign-in-title" }, h("h2", { id: "sign-in-title" }, "Sign in"), notice, provider, form));
  main.focus();
}

async function signIn(token, problems) {
  configure({ token });
  try {
    app.identity = await whoami();
  } catch (err) {
    configure({ token: null });
    forgetToken();
    if (problems) replace(problems, message("error", sentenceOf(err)));
    else showSignIn(message("error", sentenceOf(err)));
    return;
  }
  storeToken(token);
  showIdentity();
  route();
}

function showIdentity() {
  const { sub, roles, cases } = app.identity;
  replace(
    who,
    h("p", { class: "identity-line" },
      h("span", {}, "Signed in as ", h("strong", { dataset: { sub } }, sub)),
      h("span", {}, ` · ${roles.length ? roles.join(", ") : "no role"}`),
      h("span", {}, ` · cases: ${cases.length ? cases.map((c) => (c === "*" ? "all" : c)).join(", ") : "none"}`)),
    h("button", { type: "button", class: "quiet", onclick: () => signOut() }, "Sign out"),
  );
}

function rolesHeld() {
  return ROLE_PAGES.filter(([role]) => app.identity.roles.includes(role));
}

function route() {
  if (!app.identity) return;
  const held = rolesHeld();
  const [, role = "", view = "", id = ""] = location.hash.split("/");
  replace(nav, held.length > 1
    ? h("ul", {}, held.map(([name, label]) => h("li", {}, h("a", { href: `#/${name}`, "aria-current": name === role ? "page" : false }, label))))
    : null);
  if (!held.length) {
    replace(main, message("error", `Your token grants none of the roles this app serves (investigator, prosecutor, auditor); it grants: ${app.identity.roles.join(", ") || "none"}. Ask an administrator for the role you need.`));
    return;
  }
  const current = held.some(([name]) => name === role) ? role : held[0][0];
  if (view === "item" && !EVIDENCE_ID.test(id)) {
    // An address made to look like an item's could otherwise send this person's token elsewhere.
    replace(main, message("error", `This address names no evidence item: an evidence id looks like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b. Go back to the list and open the item from there.`));
    return;
  }
  let page;
  if (current === "investigator") page = investigatorPage(app.identity);
  else if (current === "prosecutor") page = view === "item" && id ? itemPage(app.identity, app.config, id) : prosecutorPage(app.identity);
  else page = auditorPage(app.identity, app.config, view === "item" && id ? id : null);
  replace(main, page);
  for (const link of nav.querySelectorAll("a")) {
    if (link.getAttribute("href") === `#/${current}`) link.setAttribute("aria-current", "page");
  }
  document.title = `${held.find(([name]) => name === current)[1]} · Custody`;
  main.focus({ preventScroll: true });
}

async function start() {
  try {
    const response = await fetch("/config.json", { cache: "no-store" });
    if (!response.ok) throw new ApiError(`The page could not read its settings (HTTP ${response.status}). Reload the page; if it persists, tell your administrator.`);
    app.config = await response.json();
  } catch (err) {
    replace(main, message("error", err instanceof ApiError ? err.message : "Could not reach the intake service to start this page. Check your connection and reload."));
    return;
  }
  configure({ config: app.config, onUnauthorized: () => {} });
  window.addEventListener("hashchange", route);
  if (app.config.oidc) {
    try {
      const token = await finishSignIn(app.config.oidc);
      if (token) {
        await signIn(token);
        return;
      }
    } catch (err) {
      showSignIn(message("error", sentenceOf(err)));
      return;
    }
  }
  const token = storedToken();
  if (token) await signIn(token);
  else showSignIn();
}

start();
