# `tidewatch scan --threads N` prints exactly what --threads 1 prints, byte for byte and in
# the same order: alerts, campaign records and dead letters (--emit alerts), and every post's
# record (--emit all). The input is the example posts repeated under new ids (so clusters,
# campaign milestones and near-duplicate alerts happen), in batches of an odd size.
# Variables: TIDEWATCH (the binary), EXAMPLES (examples/), WORK (a scratch directory).
file(MAKE_DIRECTORY ${WORK})
file(READ ${EXAMPLES}/posts.jsonl posts)
set(all "")
foreach(round RANGE 1 20)
  string(REPLACE "\"id\": \"demo-" "\"id\": \"r${round}-demo-" copy "${posts}")
  string(APPEND all "${copy}")
endforeach()
file(WRITE ${WORK}/posts.jsonl "${all}")
foreach(emit alerts all)
  foreach(threads 1 4)
    execute_process(
      COMMAND ${TIDEWATCH} scan --rules ${EXAMPLES}/rules.yaml --threads ${threads}
              -X scan.emit=${emit} -X batch_size=17 -X dedup.alert_min_count=5
              -X campaign.milestones=3,10 -X rules_cache_dir=off -X log_level=error
              ${WORK}/posts.jsonl
      OUTPUT_FILE ${WORK}/${emit}-${threads}.out
      ERROR_FILE ${WORK}/${emit}-${threads}.err
      RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "scan --threads ${threads} --emit ${emit} failed: ${rc}")
    endif()
  endforeach()
  foreach(stream out err)
    file(READ ${WORK}/${emit}-1.${stream} one)
    file(READ ${WORK}/${emit}-4.${stream} four)
    if(NOT one STREQUAL four)
      message(FATAL_ERROR "--emit ${emit}: --threads 4 ${stream} differs from --threads 1's "
                          "(${WORK}/${emit}-1.${stream} vs ${emit}-4.${stream})")
    endif()
  endforeach()
  file(READ ${WORK}/${emit}-1.out one)
  string(LENGTH "${one}" len)
  if(len EQUAL 0)
    message(FATAL_ERROR "--emit ${emit}: no output at all; the comparison proves nothing")
  endif()
endforeach()
file(READ ${WORK}/alerts-1.out alerts)
if(NOT alerts MATCHES "\"milestone\"" OR NOT alerts MATCHES "r20-demo-")
  message(FATAL_ERROR "the alerts lack campaign records or the last round: the input changed?")
endif()
message(STATUS "scan --threads 4 output is identical to --threads 1's")
