// Sign-in with an OpenID Connect provider: the authorization code flow with PKCE for a public
// client. The provider's access token is the bearer token the services verify (its issuer,
// audience and keys must be those the services are configured with).

import { sha256 } from "@noble/hashes/sha2.js";

import { ApiError } from "./api.js";

const PENDING = "custody.oidc.pending";

function base64url(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

function redirectUri() {
  return `${location.origin}/`;
}

async function discover(issuer) {
  let response;
  try {
    response = await fetch(`${issuer}/.well-known/openid-configuration`, { cache: "no-store" });
  } catch {
    throw new ApiError(`Could not reach the sign-in provider at ${issuer}. Check your connection, or sign in with a token.`);
  }
  const document = response.ok ? await response.json().catch(() => null) : null;
  if (!document?.authorization_endpoint || !document?.token_endpoint) {
    throw new ApiError(`The sign-in provider at ${issuer} did not describe itself (HTTP ${response.status}). Tell your administrator; meanwhile sign in with a token.`);
  }
  if (document.issuer && document.issuer.replace(/\/$/, "") !== issuer.replace(/\/$/, "")) {
    throw new ApiError(`The sign-in provider calls itself ${document.issuer}, not ${issuer}. Tell your administrator; meanwhile sign in with a token.`);
  }
  return document;
}

/** Sends the browser to the provider's sign-in page. */
export async function beginSignIn(oidc) {
  const provider = await discover(oidc.issuer);
  const verifier = randomText(32);
  const state = randomText(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, tokenEndpoint: provider.token_endpoint, hash: location.hash }));
  const url = new URL(provider.authorization_endpoint);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("client_id", oidc.client_id);
  url.searchParams.set("redirect_uri", redirectUri());
  url.searchParams.set("scope", oidc.scope);
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", base64url(sha256(new TextEncoder().encode(verifier))));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.toString());
}

/**
 * When the provider has sent the browser back here: the access token for the code it gave,
 * else null. The code leaves the address bar at once.
 */
export async function finishSignIn(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", `${location.pathname}${pending?.hash ?? ""}`);
  // Checked first: only the provider's answer to a sign-in started here may put its words on this page.
  if (!pending || pending.state !== params.get("state")) {
    throw new ApiError("This sign-in answer does not belong to a sign-in started in this tab. Start the sign-in again.");
  }
  if (params.has("error")) {
    const reason = params.get("error_description") || params.get("error");
    throw new ApiError(`The sign-in provider did not sign you in (${reason}). Try again, or sign in with a token.`);
  }
  const form = new URLSearchParams({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: oidc.client_id,
    code_verifier: pending.verifier,
  });
  let response;
  try {
    response = await fetch(pending.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form,
      cache: "no-store",
    });
  } catch {
    throw new ApiError("Could not reach the sign-in provider to finish signing in. Check your connection and start the sign-in again.");
  }
  const answer = await response.json().catch(() => null);
  if (!response.ok || typeof answer?.access_token !== "string") {
    const reason = answer?.error_description || answer?.error || `HTTP ${response.status}`;
    throw new ApiError(`The sign-in provider did not issue a token (${reason}). Start the sign-in again.`);
  }
  return answer.access_token;
}
