package deploy

import (
	"os"
	"testing"

	"github.com/certgate/certgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCertgate()
	os.Exit(code)
}
