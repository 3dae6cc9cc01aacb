// Only users with a verified email address get in.
exports.onExecutePostLogin = async (event, api) => {
  if (!event.user.email_verified) {
    api.access.deny('Please verify your email address before signing in.');
  }
};
