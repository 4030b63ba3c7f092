package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certgate/certgate/internal/buildinfo"
)

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the module version, VCS revision and time, and the Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(s.out, buildinfo.Read().String())
			return err
		},
	}
}
