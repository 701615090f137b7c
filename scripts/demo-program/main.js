// Demo mini-program. `MiniAppBridge` is injected by the daemon (no import), as a WebView host
// would inject it; every call goes through the daemon's permission check.
async function main() {
  const info = await MiniAppBridge.call('system.info', {});
  console.log(`hello from ${info.programId} ${info.version} on host ${info.hostVersion}`);

  const visits = ((await MiniAppBridge.call('storage.get', { key: 'visits' })).value || 0) + 1;
  await MiniAppBridge.call('storage.set', { key: 'visits', value: visits });
  console.log(`visit number ${visits} (stored durably by the daemon)`);

  const tok = await MiniAppBridge.call('auth.getToken', { scope: 'basic' });
  console.log(`got a ${tok.token.split('.').length}-part JWT, expires at ${tok.expiresAt}`);

  const pay = await MiniAppBridge.call('payment.pay', { orderId: 'order-123', amount: 99.99, currency: 'USD' });
  console.log(`paid by the host: ${pay.transactionId}`);

  try {
    await MiniAppBridge.call('geolocation.get', {});
    console.log('geolocation unexpectedly allowed');
  } catch (err) {
    console.log(`geolocation.get refused as expected: ${err.code}`);
  }
  await MiniAppBridge.call('log.write', { level: 'info', message: 'demo finished' });
}

main().then(() => process.exit(0), (err) => {
  console.error(`demo failed: ${err.code || ''} ${err.message}`);
  process.exit(1);
});
