"""The benchmark behind `make bench` (`python bench/run.py`); bench/README.md has the method.

settings     paths, the modes measured (``MODES``, ``PROBES``, ...), the log
processes    one command, reaped with wait4 for its CPU time and peak RSS
lab          commands on the lab's hosts, the workload image, clean-up, the ssh-agent
workload     memtick: starting it, its ticks, the largest gap (the downtime it saw)
moves        the floor, the hand-made pipeline, `celestial-ssh migrate`
runs         one run of one mode, and which options the installed CLI takes
data_plane   plain OpenSSH next to `celestial-ssh probe`
links        slow links and a distant coordinator, through bench/throttle.py
summary      medians and ratios
tables       the tables, markdown or plain
machine      what it ran on
history      bench/results/history.md: a line per mode and size of every run
report       latest.md, latest.json, the printed report
main         the arguments and the whole run
"""
