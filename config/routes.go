package config

import (
	"bytes"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
)

// routes converts the route blocks; cfg.Backends and cfg.Listeners must
// be built already.
func (b *builder) routes(raws []rawRoute, cfg *Config) []Route {
	var out []Route
	for _, r := range raws {
		if r.User == "" {
			b.errorf(attrRange(r.Body, "user"), "Invalid user", "A route's user pattern must not be empty; use \"*\" to match everyone.")
		} else {
			b.glob(r.Body, "user", r.User)
		}
		b.knownBackend(attrRange(r.Body, "backend"), r.Backend, cfg)
		out = append(out, Route{User: strings.ToLower(r.User), Backend: r.Backend})
	}
	if len(raws) > 0 && !anyAfterAuth(cfg) {
		b.warnf(raws[0].Body.MissingItemRange(), "Routes unused",
			"Routes only apply to listeners with connect = \"after-auth\"; no listener has it.")
	}
	return out
}

// anyAfterAuth reports whether some listener connects after login.
func anyAfterAuth(cfg *Config) bool {
	for _, l := range cfg.Listeners {
		if l.Connect == proxy.ConnectAfterAuth {
			return true
		}
	}
	return false
}

// knownBackend reports an error at rng when no backend is called name.
func (b *builder) knownBackend(rng hcl.Range, name string, cfg *Config) {
	if cfg.Backend(name) == nil && len(cfg.Backends) > 0 {
		b.errorf(rng, "Unknown backend", "There is no backend named %q; backends are %s.", name, quoteAll(backendNames(cfg)))
	}
}

// routeMap converts the route_map block, reading and checking its file;
// it returns the file's name and its entries.
func (b *builder) routeMap(r *rawRouteMap, cfg *Config) (string, map[string]string) {
	if r == nil {
		return "", nil
	}
	rng := attrRange(r.Body, "file")
	if r.File == "" {
		b.errorf(rng, "Invalid file", "route_map needs the name of its file.")
		return "", nil
	}
	src, err := os.ReadFile(r.File)
	if err != nil {
		b.errorf(rng, "Cannot read route map", "%s.", trimPathErr(err))
		return "", nil
	}
	b.files[r.File] = &hcl.File{Bytes: src}
	if !anyAfterAuth(cfg) {
		b.warnf(r.Body.MissingItemRange(), "Route map unused",
			"The route map only applies to listeners with connect = \"after-auth\"; no listener has it.")
	}
	return r.File, b.parseRouteMap(src, r.File, cfg)
}

// parseRouteMap parses a route map: one "USER BACKEND" pair per line,
// separated by blanks; blank lines and lines starting with # are ignored.
// Users are lower-cased and must be unique; backends must exist. Problems
// are reported at their line of the map file.
func (b *builder) parseRouteMap(src []byte, filename string, cfg *Config) map[string]string {
	users := map[string]string{}
	firstLine := map[string]int{}
	for line, start := 1, 0; start < len(src); line++ {
		end := bytes.IndexByte(src[start:], '\n')
		if end < 0 {
			end = len(src) - start
		}
		text := string(bytes.TrimSuffix(src[start:start+end], []byte("\r")))
		rng := lineRange(filename, text, line, start)
		start += end + 1
		fields := strings.Fields(text)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			b.errorf(rng, "Invalid route map line", "A route map line is \"USER BACKEND\"; this one has %d fields.", len(fields))
			continue
		}
		user := strings.ToLower(fields[0])
		if first, dup := firstLine[user]; dup {
			b.errorf(rng, "Duplicate route map user", "User %q is already mapped on line %d.", fields[0], first)
			continue
		}
		firstLine[user] = line
		b.knownBackend(rng, fields[1], cfg)
		users[user] = fields[1]
	}
	return users
}

// lineRange is the range of the whole of line number line, text, which
// starts at byte offset start.
func lineRange(filename, text string, line, start int) hcl.Range {
	return hcl.Range{
		Filename: filename,
		Start:    hcl.Pos{Line: line, Column: 1, Byte: start},
		End:      hcl.Pos{Line: line, Column: len(text) + 1, Byte: start + len(text)},
	}
}
