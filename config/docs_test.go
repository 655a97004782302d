package config

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// CONFIG.md marks the section of each block with "<!-- block: PATH -->";
// a section runs to the next marker or heading, and documents attributes
// as table rows starting "| `name` |".
var (
	docMarker  = regexp.MustCompile(`<!-- block: ([a-z_.]+) -->`)
	docRow     = regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\|")
	docHeading = regexp.MustCompile(`(?m)^#`)
)

// schemaBlock is one block of the HCL schema: its path in CONFIG.md
// ("top", "listener", "listener.limits", "filter.clamav", ...) and the raw
// struct that decodes it.
type schemaBlock struct {
	path string
	typ  reflect.Type
}

// schemaBlocks walks the raw structs from rawFile, and the schema of
// every filter type, the way gohcl sees their tags.
func schemaBlocks() []schemaBlock {
	var out []schemaBlock
	var walk func(path string, t reflect.Type)
	walk = func(path string, t reflect.Type) {
		out = append(out, schemaBlock{path, t})
		for i := 0; i < t.NumField(); i++ {
			name, kind := hclTag(t.Field(i))
			if kind != "block" {
				continue
			}
			ft := t.Field(i).Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			child := name
			if path != "top" {
				child = path + "." + name
			}
			walk(child, ft)
		}
	}
	walk("top", reflect.TypeOf(rawFile{}))
	for _, typ := range filterTypes() {
		out = append(out, schemaBlock{"filter." + typ, reflect.TypeOf(filterSchemas[typ]()).Elem()})
	}
	return out
}

// hclTag splits a field's hcl tag into name and kind ("attr" when the tag
// has no kind).
func hclTag(f reflect.StructField) (name, kind string) {
	tag, ok := f.Tag.Lookup("hcl")
	if !ok {
		return "", ""
	}
	name, kind, found := strings.Cut(tag, ",")
	if !found {
		kind = "attr"
	}
	return name, kind
}

// attributes lists the attribute names of a raw struct, sorted.
func attributes(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if name, kind := hclTag(t.Field(i)); name != "" && (kind == "attr" || kind == "optional") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func TestConfigDocCoversSchema(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	marks := docMarker.FindAllSubmatchIndex(doc, -1)
	for i, m := range marks {
		end := len(doc)
		if i+1 < len(marks) {
			end = marks[i+1][0]
		}
		if h := docHeading.FindIndex(doc[m[1]:end]); h != nil {
			end = m[1] + h[0]
		}
		path := string(doc[m[2]:m[3]])
		if _, dup := sections[path]; dup {
			t.Errorf("CONFIG.md documents block %q twice", path)
		}
		sections[path] = string(doc[m[1]:end])
	}

	seenType := map[reflect.Type]string{}
	known := map[string]bool{}
	for _, blk := range schemaBlocks() {
		known[blk.path] = true
		text, ok := sections[blk.path]
		if !ok {
			t.Errorf("CONFIG.md has no section <!-- block: %s --> for the %s schema", blk.path, blk.typ.Name())
			continue
		}
		var rows []string
		for _, m := range docRow.FindAllStringSubmatch(text, -1) {
			rows = append(rows, m[1])
		}
		sort.Strings(rows)
		if _, again := seenType[blk.typ]; again && len(rows) == 0 {
			continue // the same block type documented at its first path
		}
		seenType[blk.typ] = blk.path
		attrs := attributes(blk.typ)
		for _, a := range attrs {
			if !contains(rows, a) {
				t.Errorf("CONFIG.md section %s does not document attribute %q", blk.path, a)
			}
		}
		for _, r := range rows {
			if !contains(attrs, r) {
				t.Errorf("CONFIG.md section %s documents %q, which the %s schema does not have", blk.path, r, blk.typ.Name())
			}
		}
	}
	for path := range sections {
		if !known[path] {
			t.Errorf("CONFIG.md documents block %q, which the schema does not have", path)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
