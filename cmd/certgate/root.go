package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/buildinfo"
)

// streams are the process's standard streams, passed to every command so
// tests can run commands in-process.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	return newRootCmdWith(streams{in: stdin, out: stdout, err: stderr}, nil)
}

// newRootCmdWith is newRootCmd with a hook after each durable step of a
// "certgate ca" rotation (nil for certgate itself; the kill -9 tests stop
// the process there).
func newRootCmdWith(s streams, caStep func(string)) *cobra.Command {
	root := &cobra.Command{
		Use:           "certgate",
		Short:         "Short-lived client certificates and an mTLS gateway instead of static API keys",
		SilenceUsage:  true,
		SilenceErrors: true,
		// --version prints what `certgate version` prints.
		Version: buildinfo.Read().Version,
	}
	root.SetVersionTemplate(buildinfo.Read().String())
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	// Each command lives in its own file as newXxxCmd(s).
	root.AddCommand(
		// commands are registered here, one line each
		newInitCmd(s),
		newCACmd(s, caStep),
		newServerCmd(s),
		newTokenCmd(s),
		newRoleCmd(s),
		newLegacyKeyCmd(s),
		newEnrollCmd(s),
		newCertCmd(s),
		newIdentityCmd(s),
		newAuditCmd(s),
		newAccessLogCmd(s),
		newQuickstartCmd(s),
		newVerifyCmd(s),
		newAgentCmd(s),
		newGatewayCmd(s),
		newPolicyCmd(s),
		newBenchCmd(s),
		newMigrateCmd(s),
		newStoreCmd(s),
		newVersionCmd(s),
	)
	_ = s
	return root
}
