package main

import (
	"context"
	"fmt"

	"github.com/deskhook/deskhook/daemon"
)

func init() {
	register("ui", "print the console's address and a one-time login link", cmdUI)
}

func cmdUI(ctx context.Context, e *env, args []string) error {
	fs, cfgPath := newFlags(e, "ui", "[-c deskhook.yaml]",
		"Prints the address of the running daemon's operator console (/ui/ on admin.listen) and a\n"+
			"login link that signs in one browser, once, within minutes. It asks the daemon with the\n"+
			"admin token (admin.token, or the token file beside the store: run it as the daemon's user).\n"+
			"The console's login page also takes the token itself.", true)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := e.loadOpsConfig(*cfgPath)
	if err != nil {
		return err
	}
	consoleURL, link, expires, err := daemon.ConsoleLoginLink(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "console:    %s\n", consoleURL)
	fmt.Fprintf(e.stdout, "login link: %s\n", link)
	fmt.Fprintf(e.stdout, "            (signs in one browser, once, until %s)\n", expires.Local().Format("15:04:05"))
	return nil
}
