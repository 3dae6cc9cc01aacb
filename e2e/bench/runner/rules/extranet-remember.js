// The seed's "Access from an extranet" rule as stepup's built-in
// extranet-mfa states it (the corporate network from stepup's CIDR trie,
// context.request.networks), with allowRememberBrowser: true: the copy the
// built-in's documentation tells operators to make to let users be
// remembered for 30 days. Scenarios 3 and 7 run it.
function (user, context, callback) {
  var networks = context.request.networks || [];

  if (networks.indexOf('corporate') === -1) {
    context.multifactor = {
        provider: 'any',
        allowRememberBrowser: true
    };
  }

  callback(null, user, context);
}
