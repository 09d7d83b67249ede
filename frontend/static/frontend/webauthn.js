// Passkeys (WebAuthn): the API speaks JSON with base64url strings, navigator.credentials
// speaks ArrayBuffers. The browser's own converters (PublicKeyCredential.parse*FromJSON and
// credential.toJSON()) are used when it has them, this module's otherwise.
//
// Everything here except passkeyCreate/passkeyGet is pure, so Node's test runner drives it.

/** Bytes (ArrayBuffer or a view) -> base64url without padding (RFC 4648 §5). */
export function bufferToBase64url(buffer) {
  const bytes =
    buffer instanceof ArrayBuffer
      ? new Uint8Array(buffer)
      : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** base64url (padded or not) -> ArrayBuffer; throws TypeError on anything else. */
export function base64urlToBuffer(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*={0,2}$/.test(text)) {
    throw new TypeError("Not base64url");
  }
  const base64 = text.replace(/=+$/, "").replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index += 1) bytes[index] = binary.charCodeAt(index);
  return bytes.buffer;
}

function descriptorsFromJSON(descriptors) {
  return (descriptors || []).map((descriptor) => ({ ...descriptor, id: base64urlToBuffer(descriptor.id) }));
}

function nativeParser(name, PublicKeyCredentialClass) {
  const parser = PublicKeyCredentialClass && PublicKeyCredentialClass[name];
  return typeof parser === "function" ? parser.bind(PublicKeyCredentialClass) : null;
}

/** Options for navigator.credentials.create() from the API's `publicKey` JSON. */
export function creationOptionsFromJSON(json, PublicKeyCredentialClass = globalThis.PublicKeyCredential) {
  const parse = nativeParser("parseCreationOptionsFromJSON", PublicKeyCredentialClass);
  if (parse) return parse(json);
  return {
    ...json,
    challenge: base64urlToBuffer(json.challenge),
    user: { ...json.user, id: base64urlToBuffer(json.user.id) },
    excludeCredentials: descriptorsFromJSON(json.excludeCredentials),
  };
}

/** Options for navigator.credentials.get() from the API's `publicKey` JSON. */
export function requestOptionsFromJSON(json, PublicKeyCredentialClass = globalThis.PublicKeyCredential) {
  const parse = nativeParser("parseRequestOptionsFromJSON", PublicKeyCredentialClass);
  if (parse) return parse(json);
  return {
    ...json,
    challenge: base64urlToBuffer(json.challenge),
    allowCredentials: descriptorsFromJSON(json.allowCredentials),
  };
}

function responseToJSON(response) {
  const json = { clientDataJSON: bufferToBase64url(response.clientDataJSON) };
  if (response.attestationObject) {
    json.attestationObject = bufferToBase64url(response.attestationObject);
    json.transports = typeof response.getTransports === "function" ? response.getTransports() : [];
  } else {
    json.authenticatorData = bufferToBase64url(response.authenticatorData);
    json.signature = bufferToBase64url(response.signature);
    json.userHandle = response.userHandle ? bufferToBase64url(response.userHandle) : null;
  }
  return json;
}

/** A PublicKeyCredential as the JSON the API takes (what credential.toJSON() gives). */
export function credentialToJSON(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  return {
    id: credential.id,
    rawId: bufferToBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || null,
    clientExtensionResults:
      typeof credential.getClientExtensionResults === "function" ? credential.getClientExtensionResults() : {},
    response: responseToJSON(credential.response),
  };
}

/** True when this browser can use passkeys at all. */
export function passkeysSupported(scope = globalThis) {
  return typeof scope.PublicKeyCredential === "function" && Boolean(scope.navigator && scope.navigator.credentials);
}

/** What to tell the user when the browser refused or the user cancelled (a DOMException). */
export function passkeyErrorMessage(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "AbortError":
      return "The passkey request was cancelled or timed out. Try again when you are ready.";
    case "InvalidStateError":
      return "This device already holds a passkey for your account.";
    case "SecurityError":
      return "Passkeys cannot be used on this address; ask an operator to check WEBAUTHN_RP_ID.";
    case "NotSupportedError":
      return "This browser or device cannot use passkeys.";
    default:
      return null;
  }
}

/** Creates a passkey from the API's options; resolves to the JSON the API takes. */
export async function passkeyCreate(publicKey) {
  const credential = await navigator.credentials.create({ publicKey: creationOptionsFromJSON(publicKey) });
  return credentialToJSON(credential);
}

/** Asks the browser for an assertion from the API's options; resolves to the JSON the API takes. */
export async function passkeyGet(publicKey) {
  const credential = await navigator.credentials.get({ publicKey: requestOptionsFromJSON(publicKey) });
  return credentialToJSON(credential);
}
