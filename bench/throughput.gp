# gnuplot: throughput and p99 latency against wrk connections, from bench/summarize.py's
# plot_throughput.dat. Called by bench/run.sh with -e "outdir='...'; png='...'".
set terminal pngcairo size 1200,520 font ",10"
set output png
dat = outdir . "/plot_throughput.dat"
set multiplot layout 1,2 title "Pythmata vs bpmn-engine peer, wrk -t2, 2 shared cores (log scales)"
set key outside bottom center horizontal maxrows 3 font ",9"
set logscale x 2
set xtics (50, 100, 200, 400)
set xrange [40:500]
set grid
set logscale y 10
set xlabel "wrk connections"
set ylabel "completed per second (inst/s; req/s for /health)"
set title "Throughput"
plot dat using 1:2 with linespoints lw 2 title "/health (ceiling)", \
     dat using 1:4 with linespoints lw 2 title "straight, PostgreSQL", \
     dat using 1:6 with linespoints lw 2 title "parallel, PostgreSQL", \
     dat using 1:8 with linespoints lw 2 title "straight, PostgreSQL+Redis", \
     dat using 1:10 with linespoints lw 2 title "straight, SQLite", \
     dat using 1:12 with linespoints lw 2 title "parallel, SQLite", \
     dat using 1:14 with linespoints lw 2 dt 2 title "straight, peer (bpmn-engine)"
set ylabel "p99 latency, ms"
set title "p99 latency"
plot dat using 1:3 with linespoints lw 2 title "/health (ceiling)", \
     dat using 1:5 with linespoints lw 2 title "straight, PostgreSQL", \
     dat using 1:7 with linespoints lw 2 title "parallel, PostgreSQL", \
     dat using 1:9 with linespoints lw 2 title "straight, PostgreSQL+Redis", \
     dat using 1:11 with linespoints lw 2 title "straight, SQLite", \
     dat using 1:13 with linespoints lw 2 title "parallel, SQLite", \
     dat using 1:15 with linespoints lw 2 dt 2 title "straight, peer (bpmn-engine)"
unset multiplot
