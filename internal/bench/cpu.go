package bench

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, fixed at
// 100 by the Linux ABI whatever the kernel's internal tick rate.
const userHZ = 100

// ProcessCPU returns the CPU time (user + system, all threads) process pid
// has used so far, read from /proc/PID/stat; 10 ms resolution. It works on
// Linux only: elsewhere it returns an error.
func ProcessCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: CPU time of process %d: %w", pid, err)
	}
	return parseStat(pid, string(data))
}

// parseStat reads utime and stime, fields 14 and 15 of /proc/PID/stat.
// The command name (field 2) is in parentheses and may hold spaces and
// parentheses itself, so fields are counted from the last ')'.
func parseStat(pid int, stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: CPU time of process %d: /proc/%d/stat does not parse", pid, pid)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: CPU time of process %d: /proc/%d/stat has %d fields", pid, pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bench: CPU time of process %d: /proc/%d/stat field %q is not a tick count", pid, pid, s)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
