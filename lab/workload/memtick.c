/*
 * memtick: a stateful workload for live-migration tests and benchmarks.
 *
 *     memtick [MB [INTERVAL_MS [CHECK_EVERY [random|compressible]]]]
 *
 * Fills MB megabytes of memory with pseudo-random bytes, then prints one line
 * every INTERVAL_MS milliseconds:
 *
 *     tick <counter> <wall-clock ms> <checksum>
 *
 * The counter only lives in memory, so a restored copy that keeps counting
 * proves the process state moved; the checksum is recomputed over the whole
 * buffer every CHECK_EVERY ticks, so a restored copy whose memory was damaged
 * prints a different one. The wall-clock stamps let a benchmark measure the
 * downtime as the workload saw it (the largest gap between two lines).
 *
 * With a 4th argument `compressible` the memory holds low-entropy data instead:
 * a repeated line of text with one random 8-byte word in every 64 bytes, which
 * zstd shrinks several times (a benchmark of compression on slow links needs
 * both kinds). `random` (the default) is the incompressible fill.
 *
 * Built static (gcc -static) so the image needs no libc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t fnv1a(const uint8_t *data, size_t length)
{
	uint64_t hash = 1469598103934665603ULL;
	for (size_t i = 0; i < length; i++) {
		hash ^= data[i];
		hash *= 1099511628211ULL;
	}
	return hash;
}

static long long wall_clock_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	size_t megabytes = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
	long interval_ms = argc > 2 ? strtol(argv[2], NULL, 10) : 100;
	long check_every = argc > 3 ? strtol(argv[3], NULL, 10) : 10;
	int compressible = 0;
	if (argc > 4) {
		if (strcmp(argv[4], "compressible") == 0) {
			compressible = 1;
		} else if (strcmp(argv[4], "random") != 0) {
			fprintf(stderr, "memtick: fill must be 'random' or 'compressible', not '%s'\n",
				argv[4]);
			return 2;
		}
	}
	size_t length = megabytes * 1024 * 1024;
	uint8_t *memory = malloc(length ? length : 1);
	if (memory == NULL) {
		perror("malloc");
		return 1;
	}
	/* 64 bytes of text (a multiple of 8, so each copy below stays inside it) */
	static const char filler[] =
		"memtick: compressible memory, one line of text over and over...\n";
	_Static_assert(sizeof filler - 1 == 64, "filler must be 64 bytes");
	/* xorshift64: incompressible bytes, so compression cannot hide the size */
	uint64_t state = 88172645463325252ULL ^ (uint64_t)time(NULL);
	for (size_t i = 0; i + 8 <= length; i += 8) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		if (compressible && (i / 8) % 8 != 7)
			memcpy(memory + i, filler + i % (sizeof filler - 1), 8);
		else
			memcpy(memory + i, &state, 8);
	}
	uint64_t checksum = fnv1a(memory, length);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("start %zu MB checksum %016llx\n", megabytes, (unsigned long long)checksum);
	struct timespec pause = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	for (unsigned long long counter = 0;; counter++) {
		if (check_every > 0 && counter % (unsigned long long)check_every == 0)
			checksum = fnv1a(memory, length);
		printf("tick %llu %lld %016llx\n", counter, wall_clock_ms(),
		       (unsigned long long)checksum);
		nanosleep(&pause, NULL);
	}
}
