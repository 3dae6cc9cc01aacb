// The MFA step's only script, served from the step's own origin. It runs
// the WebAuthn ceremony of a form marked data-webauthn ("create" or
// "get") with the options the server put in data-options, puts the
// browser's answer in the form's "credential" field and submits the form;
// the server verifies everything. It also drives the copy and print
// buttons of the recovery codes page. No inline script, no third party.
(function () {
  "use strict";

  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) s += "=";
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function toB64url(buf) {
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (c) {
      var d = { type: c.type, id: fromB64url(c.id) };
      if (c.transports) d.transports = c.transports;
      return d;
    });
  }

  function creationOptions(o) {
    var p = Object.assign({}, o.publicKey);
    p.challenge = fromB64url(p.challenge);
    p.user = Object.assign({}, p.user, { id: fromB64url(p.user.id) });
    p.excludeCredentials = descriptors(p.excludeCredentials);
    return { publicKey: p };
  }

  function requestOptions(o) {
    var p = Object.assign({}, o.publicKey);
    p.challenge = fromB64url(p.challenge);
    p.allowCredentials = descriptors(p.allowCredentials);
    return { publicKey: p };
  }

  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: toB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) out.response.transports = r.getTransports();
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) out.response.userHandle = toB64url(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function showError(form, text) {
    var p = form.querySelector("#passkey-error");
    if (!p) return;
    p.textContent = text;
    p.hidden = false;
  }

  function ceremony(form) {
    var busy = false;
    form.addEventListener("submit", function (ev) {
      if (form.dataset.done === "1") return;
      ev.preventDefault();
      if (busy) return;
      if (!window.PublicKeyCredential || !navigator.credentials) {
        showError(form, form.dataset.msgUnsupported);
        return;
      }
      busy = true;
      var opts, run;
      try {
        opts = JSON.parse(form.dataset.options);
        run = form.dataset.webauthn === "create"
          ? navigator.credentials.create(creationOptions(opts))
          : navigator.credentials.get(requestOptions(opts));
      } catch (e) {
        busy = false;
        showError(form, form.dataset.msgFailed);
        return;
      }
      run.then(function (cred) {
        form.querySelector("input[name=credential]").value = encode(cred);
        form.dataset.done = "1";
        form.submit();
      }, function () {
        busy = false;
        showError(form, form.dataset.msgFailed);
      });
    });
  }

  function codesText() {
    return Array.prototype.map.call(document.querySelectorAll("#recovery-codes code"), function (c) {
      return c.textContent;
    }).join("\n") + "\n";
  }

  function buttons() {
    var copy = document.getElementById("copy-codes");
    if (copy && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        navigator.clipboard.writeText(codesText()).then(function () {
          var s = document.getElementById("copy-status");
          if (s) s.textContent = copy.dataset.msgCopied;
        });
      });
    }
    var print = document.getElementById("print-codes");
    if (print && window.print) {
      print.hidden = false;
      print.addEventListener("click", function () { window.print(); });
    }
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("form[data-webauthn]"), ceremony);
    buttons();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
