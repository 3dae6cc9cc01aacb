// Built-in rule "extranet-mfa": the "Access from an extranet" rule of
// Auth0's "Configuring Custom MFA" page, checking the client against
// stepup's configured `corporate` network (context.request.networks, from
// the CIDR trie) instead of the page's hard-coded "192.168.1.134/26".
// Outside the corporate network, MFA is required every time, exactly as in
// the original (allowRememberBrowser: false). To let users be remembered
// for 30 days, copy this file, set allowRememberBrowser: true, and list it
// under rules.list with `file:`.
function (user, context, callback) {
  var networks = context.request.networks || [];

  if (networks.indexOf('corporate') === -1) {
    context.multifactor = {
        provider: 'any',
        allowRememberBrowser: false
    };
  }

  callback(null, user, context);
}
