// The five snippets of the seed documents (rules/testdata/auth0-examples) as one
// post-login Action; docs/actions.md walks through the rewrite. The
// helpers stand for the conditions the seed leaves to the reader
// (conditionIsMet, condition): neither holds.
const ipaddr = require('ipaddr.js');

const CORP_NETWORK = '192.168.1.134/26';

function conditionIsMet() {
  return false;
}

function condition() {
  return false;
}

exports.onExecutePostLogin = async (event, api) => {
  // 003_select_users.js: MFA for everyone, never remembered.
  api.multifactor.enable('any', { allowRememberBrowser: false });

  // 003_frequency.js
  if (conditionIsMet()) {
    api.multifactor.enable('any', { allowRememberBrowser: false });
  }

  // 003_extranet.js: MFA from outside the corporate network.
  const ip = ipaddr.parse(event.request.ip);
  if (!ip.match(ipaddr.parseCIDR(CORP_NETWORK))) {
    api.multifactor.enable('any', { allowRememberBrowser: false });
  }

  // 003_redirect.js: a custom MFA service (the callback pass runs
  // onContinuePostLogin instead).
  if (condition()) {
    api.redirect.sendUserTo('https://your_custom_mfa');
  }

  // 000_duo.md: Duo for one application.
  if (event.client.client_id === event.secrets['DUO_MFA:CLIENT_ID']) {
    api.multifactor.enable('duo', {
      providerOptions: {
        ikey: event.secrets['DUO_MFA:IKEY'],
        skey: event.secrets['DUO_MFA:SKEY'],
        host: event.secrets['DUO_MFA:API_HOSTNAME'],
      },
    });
  }
};

exports.onContinuePostLogin = async (event, api) => {
  // 003_redirect.js's callback branch: nothing to check in the seed.
};
