/* Wall-clock seconds from a monotonic clock, for timings. */
#ifndef OSP_CORE_CLOCK_H
#define OSP_CORE_CLOCK_H

double osp_seconds(void);

#endif
