//go:build integration

// Package integration holds popgate's integration tests: they drive the
// real popgate binary against real Dovecot, clamd and Pebble instances
// started by integration/start.sh (installed by integration/setup.sh) and
// only build with `-tags integration`.
//
// The harness (harness*_test.go) provides:
//   - itEnv, envValue: the environment start.sh wrote to
//     $POPGATE_IT_DIR/env (default /tmp/popgate-it/env);
//   - buildPopgate, startPopgate, *Popgate: the binary under test;
//   - dialPOP, dialPOPS, tryDialPOP, *popClient: a byte-exact POP3 client;
//   - seedUser, seedUserB, maildirFiles, maildirMessages, expectedRETR:
//     mailbox fixtures from integration/mkmail;
//   - clamdScan, clamdPing, eicar: the virus scanner and the test string,
//     assembled from two halves so no file carries it;
//   - freePort, itPassword, watchLog, tlsClientConfig: small utilities.
//
// The backend pool tests (pool*_test.go) use three Dovecot instances that
// share one mail root and passwd file (integration/pools.sh, which
// start.sh runs; POOL_* in the env file) and a fourth member each test
// that kills one starts and stops itself.
//
// Conventions: mailboxes are shared by all tests. alice, bob, big, virus,
// spacey and the load users are read-only; a test that deletes messages
// uses dele (or another user) and reseeds it with seedUser first. Only
// harness_test.go defines TestMain.
package integration
