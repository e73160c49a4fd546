/* PlanReplay has no interface: its constructor runs before main (replay.c). */
