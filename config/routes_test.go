package config

import "testing"

// TestRoutesRoute: the route map's exact entries come first, then the
// route blocks in file order; login names match case-insensitively; no
// match means the listener's backend ("").
func TestRoutesRoute(t *testing.T) {
	dir := testFiles(t)
	cfg, _, diags := parseTest(t, `listener "pop3" {
  address = "127.0.0.1:1110"
  connect = "after-auth"
  backend = "local"
}
backend "local" {
  address = "127.0.0.1:110"
}
backend "other" {
  address = "127.0.0.1:111"
}
route {
  user    = "*@Example.COM"
  backend = "other"
}
route {
  user    = "a*"
  backend = "local"
}
route_map {
  file = "{{dir}}/routes"
}
`, dir)
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	for login, want := range map[string]string{
		"ALICE":             "local", // the route map: "Alice local"
		"alice@example.com": "other",
		"bob@EXAMPLE.com":   "other",
		"anna":              "local",
		"bob":               "",
	} {
		if got := cfg.Routes.Route(login); got != want {
			t.Errorf("Route(%q) = %q, want %q", login, got, want)
		}
	}
	var none Routes
	if got := none.Route("alice"); got != "" {
		t.Errorf("no routes: Route(alice) = %q", got)
	}
}
