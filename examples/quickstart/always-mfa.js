// The quickstart's only rule: ask for a second factor on every new
// session, wherever the browser is, and let the user tick "remember this
// browser" on the MFA page.
function alwaysMFA(user, context, callback) {
  context.multifactor = {
    provider: 'any',
    allowRememberBrowser: true
  };
  callback(null, user, context);
}
