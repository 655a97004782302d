package main

import (
	"os"

	"github.com/popgate/popgate/filters/audit"
)

// auditVerify checks the hash chain of the audit log at path and returns
// the number of records checked. It stands here until run.go provides it;
// whoever moves it deletes this file.
func auditVerify(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return audit.Verify(f)
}
