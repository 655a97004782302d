package main

import (
	"encoding/hex"
	"fmt"
	"os"
)

// eicarHalves are the two halves of the 68-byte EICAR anti-virus test
// string. They are kept apart so that no file in the repository matches a
// virus scanner's signature.
var eicarHalves = [2]string{
	`X5O!P%@AP[4\PZX54(P^)7CC)7}$`,
	`EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`,
}

// eicar returns the EICAR test string, assembled at run time.
func eicar() string {
	return eicarHalves[0] + eicarHalves[1]
}

// signatureName is the name of the signature in the generated .ndb file.
// clamd reports it with a ".UNOFFICIAL" suffix; tests match " FOUND".
const signatureName = "Popgate-Test-EICAR"

// writeNDB writes a ClamAV extended signature file (.ndb) with one
// signature that matches the EICAR string anywhere in any file type:
// "Name:TargetType:Offset:HexSignature" with target 0 (any) and offset *.
func writeNDB(path string) error {
	line := fmt.Sprintf("%s:0:*:%s\n", signatureName, hex.EncodeToString([]byte(eicar())))
	if err := writeFileAtomic(path, []byte(line), 0o644); err != nil {
		return fmt.Errorf("write signature file: %w", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so readers never see a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
