%% pgbench: measure Erlang/OTP `pg` (process groups) on loopback.
%%
%% Workers are started by run.sh as pgb_w1..pgb_wN@127.0.0.1 with the default
%% `pg` scope (-kernel start_pg true).  A hidden coordinator node
%% (pgb_ctl@127.0.0.1) drives them via erpc and collects timestamps.
%% All cross-node timestamps are os:system_time/1 (CLOCK_REALTIME of this one
%% host, so they are comparable between the BEAM processes on it).
%%
%% Modes (argv of `-run pgbench main ...`):
%%   converge N M G          mesh formation + group convergence (3 phases)
%%   latency  N ITERS        join/leave/exit -> remote pg:monitor notification
%%   latency_every N ITERS  join/leave on w1 -> a pg:monitor on every other node:
%%                            when the first, second, middle and last node knew,
%%                            and each node's median (groupmesh addition)
%%   loss     N M G kill|stop  node loss: SIGKILL (TCP reset) or SIGSTOP
%%                            (silent peer, detected only by net ticks)
-module(pgbench).

-export([worker_init/1, main/1]).
%% called on workers over erpc
-export([prepare/3, prepare_loss/2, latency_run/2, latency_every_run/2, mem/0, mesh/1,
         kill_prefix/1]).

-define(GO_DELAY_US, 300000).

%%====================================================================
%% worker side
%%====================================================================

%% Safety net: a worker halts itself after LifetimeS seconds no matter what.
worker_init([LifetimeS]) ->
    S = list_to_integer(atom_to_list(LifetimeS)),
    spawn(fun() -> timer:sleep(S * 1000), erlang:halt(3) end),
    ok.

now_us() -> os:system_time(microsecond).
now_ns() -> os:system_time(nanosecond).

mem() ->
    W = erlang:system_info(wordsize),
    #{total => erlang:memory(total),
      processes => erlang:memory(processes),
      ets => erlang:memory(ets),
      pg_ets => ets:info(pg, memory) * W,
      pg_proc => element(2, process_info(whereis(pg), memory)),
      process_count => erlang:system_info(process_count)}.

total_members() ->
    lists:sum([length(pg:get_members(G)) || G <- pg:which_groups()]).

%% ping every other worker (in random order)
mesh(Ws) ->
    Others = [W || W <- Ws, W =/= node()],
    Sh = [X || {_, X} <- lists:sort([{rand:uniform(), O} || O <- Others])],
    [net_adm:ping(O) || O <- Sh],
    ok.

%% Spawn a waiter for one phase; returns its pid.  Opts:
%%   mesh => bool (ping all others at go), action => {join, Prefix, M, G}
%%   | {exit, Prefix} | none, target => total member count to wait for,
%%   n => N.
prepare(Ctl, Ws, Opts) ->
    Parent = self(),
    Pid = spawn(fun() -> waiter_init(Parent, Ctl, Ws, Opts) end),
    receive {waiter_ready, Pid} -> Pid after 10000 -> error(waiter_timeout) end.

waiter_init(Parent, Ctl, Ws, Opts) ->
    ok = net_kernel:monitor_nodes(true),
    {Ref, Init} = pg:monitor_scope(),
    Count0 = lists:sum([length(P) || P <- maps:values(Init)]),
    Mem0 = mem(),
    Parent ! {waiter_ready, self()},
    TStart = receive {go, T} -> T end,
    sleep_until(TStart),
    T0 = now_us(),
    case maps:get(mesh, Opts) of
        true -> spawn(fun() -> mesh(Ws) end);
        false -> ok
    end,
    Me = self(),
    case maps:get(action, Opts) of
        {join, Prefix, M, G} ->
            spawn(fun() -> joiner(Me, Prefix, M, G) end);
        {exit, Prefix} ->
            spawn(fun() -> kill_prefix(Prefix), Me ! {local_done, now_us()} end);
        none ->
            Me ! {local_done, now_us()}
    end,
    N = maps:get(n, Opts),
    Target = maps:get(target, Opts),
    S = #{ref => Ref, count => Count0, ev_count => Count0, nodes => length(nodes()), n => N,
          target => Target, t0 => T0, t_mesh => undefined, t_local => undefined,
          t_conv => undefined, polls => 0, events => 0},
    S1 = wloop(check(S)),
    Mem1 = mem(),
    %% drain notifications still queued (until 300 ms of silence), then compare
    %% the pure event-based count with the ETS view: shows whether the scope
    %% monitor delivered every join/leave exactly once.
    EvFinal = drain(Ref, maps:get(ev_count, S1)),
    Ctl ! {result, node(), S1#{mem_before => Mem0, mem_after => Mem1,
                               verified_members => total_members(),
                               ev_count_final => EvFinal,
                               nodes_after => length(nodes())}}.

drain(Ref, C) ->
    receive
        {Ref, join, _G, Pids} -> drain(Ref, C + length(Pids));
        {Ref, leave, _G, Pids} -> drain(Ref, C - length(Pids))
    after 300 -> C
    end.

joiner(Waiter, Prefix, M, G) ->
    Self = self(),
    Pids = [spawn(fun() ->
                          ok = pg:join({Prefix, I rem G}, self()),
                          Self ! joined,
                          receive stop -> ok end
                  end) || I <- lists:seq(0, M - 1)],
    persistent_term:put({pgbench, Prefix}, Pids),
    [receive joined -> ok end || _ <- Pids],
    Waiter ! {local_done, now_us()}.

kill_prefix(Prefix) ->
    Pids = persistent_term:get({pgbench, Prefix}, []),
    [exit(P, kill) || P <- Pids],
    ok.

sleep_until(T) ->
    D = T - now_us(),
    if D > 0 -> timer:sleep(D div 1000), busy_until(T);
       true -> ok
    end.
busy_until(T) ->
    case now_us() >= T of true -> ok; false -> busy_until(T) end.

check(#{t_conv := undefined} = S) ->
    #{nodes := Nd, n := N, count := C, target := Tg, t_mesh := TM} = S,
    S1 = case TM =:= undefined andalso Nd >= N - 1 of
             true -> S#{t_mesh => now_us()};
             false -> S
         end,
    case Nd >= N - 1 andalso C =:= Tg of
        true ->
            T = now_us(),
            %% verify against the authoritative ETS view
            case total_members() of
                Tg -> S1#{t_conv => T, conv_via => maps:get(via, S1, event)};
                _ -> S1
            end;
        false -> S1
    end;
check(S) -> S.

wloop(#{t_conv := T, t_local := TL} = S) when T =/= undefined, TL =/= undefined ->
    S;
wloop(#{ref := Ref} = S) ->
    receive
        {Ref, join, _G, Pids} ->
            wloop(check(S#{count => maps:get(count, S) + length(Pids),
                           ev_count => maps:get(ev_count, S) + length(Pids),
                           events => maps:get(events, S) + 1}));
        {Ref, leave, _G, Pids} ->
            wloop(check(S#{count => maps:get(count, S) - length(Pids),
                           ev_count => maps:get(ev_count, S) - length(Pids),
                           events => maps:get(events, S) + 1}));
        {nodeup, _} ->
            wloop(check(S#{nodes => length(nodes())}));
        {nodedown, _} ->
            wloop(check(S#{nodes => length(nodes())}));
        {local_done, T} ->
            wloop(check(S#{t_local => T}))
    after 100 ->
            %% idle for 100 ms: re-sync the working count with ETS (ETS is
            %% written before pg sends the notification, so the two can
            %% differ for a moment); ev_count is left alone
            S1 = check(S#{count => total_members(), nodes => length(nodes()),
                          polls => maps:get(polls, S) + 1, via => poll}),
            wloop(maps:remove(via, S1))
    end.

%% ---- node loss: waiter on a survivor --------------------------------
prepare_loss(Ctl, Victim) ->
    Parent = self(),
    Pid = spawn(fun() ->
                        ok = net_kernel:monitor_nodes(true, [nodedown_reason]),
                        {Ref, Init} = pg:monitor_scope(),
                        VC = lists:sum([length([P || P <- Ps, node(P) =:= Victim])
                                        || Ps <- maps:values(Init)]),
                        Parent ! {ready, self()},
                        loss_loop(Ctl, Victim, Ref, #{victim_members0 => VC,
                                                      victim_members => VC,
                                                      t_nodedown => undefined,
                                                      t_gone => undefined})
                end),
    receive {ready, Pid} -> Pid after 10000 -> error(timeout) end.

loss_loop(Ctl, _V, _Ref, #{t_nodedown := TD, t_gone := TG} = S)
  when TD =/= undefined, TG =/= undefined ->
    Ctl ! {loss_result, node(), S#{nodes_after => length(nodes()),
                                   members_after => total_members()}};
loss_loop(Ctl, V, Ref, S) ->
    receive
        {Ref, leave, _G, Pids} ->
            C = maps:get(victim_members, S) - length([P || P <- Pids, node(P) =:= V]),
            S1 = S#{victim_members => C},
            S2 = case C =< 0 andalso maps:get(t_gone, S) =:= undefined of
                     true -> S1#{t_gone => now_us()};
                     false -> S1
                 end,
            loss_loop(Ctl, V, Ref, S2);
        {Ref, join, _G, _} ->
            loss_loop(Ctl, V, Ref, S);
        {nodedown, V, Info} ->
            loss_loop(Ctl, V, Ref, S#{t_nodedown => now_us(), nodedown_info => Info});
        {nodedown, Other, Info} ->
            loss_loop(Ctl, V, Ref, S#{{other_nodedown, Other} => {now_us(), Info}});
        {nodeup, _, _} ->
            loss_loop(Ctl, V, Ref, S)
    end.

%% ---- notification latency (runs on node A, monitor on node B) --------
latency_run(B, Iters) ->
    Runner = self(),
    Grp = latency_group,
    Mon = spawn(B, fun() ->
                           {Ref, []} = pg:monitor(Grp),
                           Runner ! {mon_ready, self()},
                           mon_loop(Ref, Runner)
                   end),
    receive {mon_ready, Mon} -> ok after 5000 -> error(mon_timeout) end,
    Echo = spawn(B, fun EchoLoop() -> receive {ping, From, T} -> From ! {pong, T, now_ns()}, EchoLoop(); stop -> ok end end),
    Warm = 50,
    Samples = [lat_iter(Mon) || _ <- lists:seq(1, Iters + Warm)],
    Rtt = [begin T0 = now_ns(), Echo ! {ping, self(), T0},
                 receive {pong, T0, TB} -> {(TB - T0) / 1000, (now_ns() - T0) / 1000} end end
           || _ <- lists:seq(1, Iters + Warm)],
    Mon ! stop, Echo ! stop,
    S = lists:nthtail(Warm, Samples),
    R = lists:nthtail(Warm, Rtt),
    #{iters => Iters,
      join_call_us => stats([element(1, X) || X <- S]),
      join_oneway_us => stats([element(2, X) || X <- S]),
      join_roundtrip_us => stats([element(3, X) || X <- S]),
      leave_call_us => stats([element(4, X) || X <- S]),
      leave_oneway_us => stats([element(5, X) || X <- S]),
      exit_oneway_us => stats([element(6, X) || X <- S]),
      plain_msg_oneway_us => stats([A || {A, _} <- R]),
      plain_msg_roundtrip_us => stats([Bx || {_, Bx} <- R])}.

lat_iter(_Mon) ->
    P1 = spawn(fun() -> receive stop -> ok end end),
    T0 = now_ns(),
    ok = pg:join(latency_group, P1),
    T1 = now_ns(),
    TB1 = receive {notif, join, [P1], TB} -> TB end,
    T2 = now_ns(),
    T3 = now_ns(),
    ok = pg:leave(latency_group, P1),
    T4 = now_ns(),
    TB2 = receive {notif, leave, [P1], TBl} -> TBl end,
    P1 ! stop,
    %% process exit (no explicit leave): pg's local monitor fires
    P2 = spawn(fun() -> receive stop -> ok end end),
    ok = pg:join(latency_group, P2),
    receive {notif, join, [P2], _} -> ok end,
    T5 = now_ns(),
    exit(P2, kill),
    TB3 = receive {notif, leave, [P2], TBe} -> TBe end,
    {(T1 - T0) / 1000, (TB1 - T0) / 1000, (T2 - T0) / 1000,
     (T4 - T3) / 1000, (TB2 - T3) / 1000, (TB3 - T5) / 1000}.

%% ---- notification latency to every node (groupmesh addition) ----------
%% A = this node joins and leaves a fresh process per iteration and waits for
%% the last node's monitor to tell it (as groupmesh's bench waits for its B);
%% every node's monitor stamps each notification and keeps it until the end.
%% Per change, the arrivals are sorted, so rank K is the (K+1)-th node to know.
latency_every_run(Bs, Iters) ->
    Runner = self(),
    Grp = latency_group,
    Loud = lists:last(Bs),
    Mons = [spawn(B, fun() ->
                             {Ref, []} = pg:monitor(Grp),
                             Runner ! {mon_ready, self()},
                             every_mon_loop(Ref, Runner, B =:= Loud, [])
                     end) || B <- Bs],
    [receive {mon_ready, M} -> ok after 5000 -> error(mon_timeout) end || M <- Mons],
    Warm = 50,
    Made = lists:append([every_iter() || _ <- lists:seq(1, Iters + Warm)]),
    [M ! {stop, self()} || M <- Mons],
    Recs = [receive {recorded, M, N, Acc} -> {N, maps:from_list([{{V, P}, T} || {V, P, T} <- Acc])}
            after 10000 -> error(record_timeout) end || M <- Mons],
    S = [[{N, (maps:get({V, P}, R) - T0) / 1000} || {N, R} <- Recs, maps:is_key({V, P}, R)]
         || {V, P, T0} <- lists:nthtail(2 * Warm, Made)],
    Last = length(Bs) - 1,
    Ranks = fun(K) -> [lists:nth(K + 1, lists:sort([D || {_, D} <- X])) || X <- S, length(X) > K] end,
    PerNode = [{atom_to_list(B), stats([D || X <- S, {N, D} <- X, N =:= B])} || B <- Bs],
    #{iters => Iters,
      rank_first_us => stats(Ranks(0)),
      rank_second_us => stats(Ranks(min(1, Last))),
      rank_middle_us => stats(Ranks(Last div 2)),
      rank_last_us => stats(Ranks(Last)),
      per_node => PerNode}.

%% One join and one leave, each with A's stamp just before the call.
every_iter() ->
    P = spawn(fun() -> receive stop -> ok end end),
    T0 = now_ns(),
    ok = pg:join(latency_group, P),
    receive {notif, join, [P]} -> ok end,
    T1 = now_ns(),
    ok = pg:leave(latency_group, P),
    receive {notif, leave, [P]} -> ok end,
    P ! stop,
    [{join, P, T0}, {leave, P, T1}].

every_mon_loop(Ref, Runner, Loud, Acc) ->
    receive
        {Ref, Verb, _G, [P]} ->
            T = now_ns(),
            Loud andalso (Runner ! {notif, Verb, [P]}),
            every_mon_loop(Ref, Runner, Loud, [{Verb, P, T} | Acc]);
        {stop, From} -> From ! {recorded, self(), node(), Acc}
    end.

mon_loop(Ref, Runner) ->
    receive
        {Ref, Verb, _G, Pids} ->
            Runner ! {notif, Verb, Pids, now_ns()},
            mon_loop(Ref, Runner);
        stop -> ok
    end.

stats(L0) ->
    L = lists:sort([float(X) || X <- L0]),
    Len = length(L),
    P = fun(Q) -> lists:nth(max(1, min(Len, ceil(Q * Len))), L) end,
    #{n => Len, min => hd(L), median => P(0.5), p90 => P(0.9), p99 => P(0.99),
      max => lists:last(L), mean => lists:sum(L) / Len}.

%%====================================================================
%% coordinator side
%%====================================================================

main([Mode | Args]) ->
    Code = try run(Mode, Args), 0
           catch C:E:St ->
                   io:format("ERROR ~p:~p~n~p~n", [C, E, St]), 1
           end,
    halt_workers(),
    erlang:halt(Code).

workers(N) ->
    [list_to_atom("pgb_w" ++ integer_to_list(I) ++ "@127.0.0.1") || I <- lists:seq(1, N)].

halt_workers() ->
    Ws = persistent_term:get(pgbench_workers, []),
    [catch erpc:cast(W, erlang, halt, []) || W <- Ws, lists:member(W, nodes(hidden) ++ nodes())],
    timer:sleep(300).

connect(Ws) ->
    persistent_term:put(pgbench_workers, Ws),
    T0 = now_us(),
    Deadline = T0 + 60000000,
    [wait_pong(W, Deadline) || W <- Ws],
    (now_us() - T0) / 1000.

wait_pong(W, Deadline) ->
    case net_adm:ping(W) of
        pong -> ok;
        pang ->
            case now_us() > Deadline of
                true -> error({no_pong, W});
                false -> timer:sleep(100), wait_pong(W, Deadline)
            end
    end.

out(Fmt, Args) -> io:format(Fmt, Args).

run("converge", [Ns, Ms, Gs]) ->
    [N, M, G] = [list_to_integer(X) || X <- [Ns, Ms, Gs]],
    Ws = workers(N),
    Tc = connect(Ws),
    out("# converge N=~p M=~p G=~p; otp=~s erts=~s net_ticktime=~p; workers reachable after ~.1f ms~n",
        [N, M, G, erlang:system_info(otp_release), erlang:system_info(version),
         net_kernel:get_net_ticktime(), Tc]),
    %% workers must not yet see each other
    Pre = [length(erpc:call(W, erlang, nodes, [])) || W <- Ws],
    out("# visible peers per worker before go: ~w~n", [Pre]),
    R1 = phase(Ws, #{mesh => true, action => {join, g, M, G}, n => N, target => N * M}),
    summary("phase1 cold: ping-mesh + each node joins M procs", R1, true),
    R2 = phase(Ws, #{mesh => false, action => {join, h, M, G}, n => N, target => 2 * N * M}),
    summary("phase2 warm mesh: each node joins M more procs", R2, false),
    R3 = phase(Ws, #{mesh => false, action => {exit, h}, n => N, target => N * M}),
    summary("phase3 warm mesh: the M phase-2 procs on each node exit (kill)", R3, false),
    ok;

run("latency", [Ns, Is]) ->
    [N, Iters] = [list_to_integer(X) || X <- [Ns, Is]],
    Ws = workers(N),
    connect(Ws),
    form_mesh(Ws),
    [A, B | _] = Ws,
    out("# latency N=~p iters=~p A=~p B=~p otp=~s~n", [N, Iters, A, B, erlang:system_info(otp_release)]),
    R = erpc:call(A, pgbench, latency_run, [B, Iters], 110000),
    [out("~-24s ~s~n", [K, fmt_stats(V)]) || {K, V} <- lists:sort(maps:to_list(R)), is_map(V)],
    ok;

run("latency_every", [Ns, Is]) ->
    [N, Iters] = [list_to_integer(X) || X <- [Ns, Is]],
    Ws = workers(N),
    connect(Ws),
    form_mesh(Ws),
    [A | Bs] = Ws,
    out("# latency_every N=~p iters=~p A=~p otp=~s~n", [N, Iters, A, erlang:system_info(otp_release)]),
    R = erpc:call(A, pgbench, latency_every_run, [Bs, Iters], 110000),
    [out("~-24s ~s~n", [K, fmt_stats(V)]) || {K, V} <- lists:sort(maps:to_list(R)), is_map(V)],
    [out("node ~-20s ~s~n", [Nd, fmt_stats(V)]) || {Nd, V} <- maps:get(per_node, R)],
    ok;

run("loss", [Ns, Ms, Gs, Method]) ->
    [N, M, G] = [list_to_integer(X) || X <- [Ns, Ms, Gs]],
    Ws = workers(N),
    connect(Ws),
    Tick = net_kernel:get_net_ticktime(),
    Intensity = application:get_env(kernel, net_tickintensity, 4),
    out("# loss N=~p M=~p G=~p method=~s net_ticktime=~p net_tickintensity=~p otp=~s~n",
        [N, M, G, Method, Tick, Intensity, erlang:system_info(otp_release)]),
    R1 = phase(Ws, #{mesh => true, action => {join, g, M, G}, n => N, target => N * M}),
    summary("setup: mesh + joins", R1, true),
    Victim = lists:last(Ws),
    Survivors = Ws -- [Victim],
    VOsPid = erpc:call(Victim, os, getpid, []),
    Waiters = [erpc:call(S, pgbench, prepare_loss, [self(), Victim]) || S <- Survivors],
    true = length(Waiters) =:= length(Survivors),
    erlang:monitor_node(Victim, true),
    Sig = case Method of "kill" -> "-KILL"; "stop" -> "-STOP" end,
    T0 = now_us(),
    Port = open_port({spawn_executable, "/bin/kill"}, [{args, [Sig, VOsPid]}, exit_status]),
    receive {Port, {exit_status, 0}} -> ok after 5000 -> error(kill_failed) end,
    T1 = now_us(),
    out("# sent ~s to ~p (os pid ~s); /bin/kill returned after ~.2f ms~n",
        [Sig, Victim, VOsPid, (T1 - T0) / 1000]),
    Deadline = 100000,
    Res = collect_loss(length(Survivors), Deadline, []),
    CtlDown = receive {nodedown, Victim} -> (now_us() - T0) / 1000 after 2000 -> undefined end,
    Reasons = lists:usort([R || {_, S} <- Res, [{nodedown_reason, R}] <- [maps:get(nodedown_info, S, [])]]),
    Others = [O || {_, S} <- Res, {{other_nodedown, O}, _} <- maps:to_list(S)],
    lists:foreach(
      fun({Node, S}) ->
              out("~p: nodedown after ~s ms (reason ~0p); all ~p victim members gone after ~s ms; "
                  "members_after=~p nodes_after=~p~n",
                  [Node, ms(maps:get(t_nodedown, S), T0), maps:get(nodedown_info, S, none),
                   maps:get(victim_members0, S), ms(maps:get(t_gone, S), T0),
                   maps:get(members_after, S, '?'), maps:get(nodes_after, S, '?')]),
              [out("   also saw nodedown of ~p after ~s ms (~0p)~n", [O, ms(Tn, T0), I])
               || {{other_nodedown, O}, {Tn, I}} <- maps:to_list(S)]
      end, lists:sort(Res)),
    Gone = [maps:get(t_gone, S) - T0 || {_, S} <- Res, maps:get(t_gone, S) =/= undefined],
    case Gone of
        [] -> out("RESULT loss method=~s tick=~p: no survivor finished within ~p s~n",
                  [Method, Tick, Deadline div 1000]);
        _ -> out("RESULT loss method=~s tick=~p survivors=~p gone_ms min=~.1f median=~.1f max=~.1f "
                 "nodedown_reasons=~0p other_nodedowns=~p (ctl hidden-node nodedown ~p ms)~n",
                 [Method, Tick, length(Gone), lists:min(Gone) / 1000,
                  median(Gone) / 1000, lists:max(Gone) / 1000, Reasons, length(Others), CtlDown])
    end,
    case Method of
        "stop" -> os:cmd("kill -KILL " ++ VOsPid);
        _ -> ok
    end,
    ok.

ms(undefined, _) -> "never";
ms(T, T0) -> io_lib:format("~.1f", [(T - T0) / 1000]).

collect_loss(0, _, Acc) -> Acc;
collect_loss(K, Timeout, Acc) ->
    receive {loss_result, Node, S} -> collect_loss(K - 1, Timeout, [{Node, S} | Acc])
    after Timeout -> Acc
    end.

form_mesh(Ws) ->
    [erpc:call(W, pgbench, mesh, [Ws]) || W <- Ws],
    wait_mesh(Ws, 100).
wait_mesh(_Ws, 0) -> error(mesh_timeout);
wait_mesh(Ws, K) ->
    N = length(Ws),
    case lists:all(fun(W) -> length(erpc:call(W, erlang, nodes, [])) =:= N - 1 end, Ws) of
        true -> timer:sleep(500), ok;
        false -> timer:sleep(100), wait_mesh(Ws, K - 1)
    end.

phase(Ws, Opts) ->
    Pids = [erpc:call(W, pgbench, prepare, [self(), Ws, Opts], 10000) || W <- Ws],
    TStart = now_us() + ?GO_DELAY_US,
    [P ! {go, TStart} || P <- Pids],
    Res = collect(length(Ws), 100000, []),
    {TStart, Res}.

collect(0, _, Acc) -> lists:sort(Acc);
collect(K, Timeout, Acc) ->
    receive {result, Node, S} -> collect(K - 1, Timeout, [{Node, S} | Acc])
    after Timeout -> error({phase_timeout, [N || {N, _} <- Acc]})
    end.

median(L) -> S = lists:sort(L), lists:nth((length(S) + 1) div 2, S).

summary(Title, {TStart, Res}, ShowMesh) ->
    Rel = fun(K) -> [(maps:get(K, S) - TStart) / 1000 || {_, S} <- Res] end,
    Conv = Rel(t_conv),
    Local = Rel(t_local),
    out("## ~s~n", [Title]),
    case ShowMesh of
        true ->
            Mesh = Rel(t_mesh),
            out("   mesh complete (all N-1 peers visible) ms: min ~.1f median ~.1f max ~.1f~n",
                [lists:min(Mesh), median(Mesh), lists:max(Mesh)]);
        false -> ok
    end,
    out("   local joins/exits done ms:   min ~.1f median ~.1f max ~.1f~n",
        [lists:min(Local), median(Local), lists:max(Local)]),
    out("   node sees all members ms:    min ~.1f median ~.1f max ~.1f~n",
        [lists:min(Conv), median(Conv), lists:max(Conv)]),
    Ver = lists:usort([maps:get(verified_members, S) || {_, S} <- Res]),
    Polls = lists:sum([maps:get(polls, S) || {_, S} <- Res]),
    ByPoll = length([x || {_, S} <- Res, maps:get(conv_via, S) =:= poll]),
    out("   verified get_members totals: ~w (idle 100ms re-counts: ~p; nodes whose convergence was first seen by a re-count, not a monitor event: ~p)~n",
        [Ver, Polls, ByPoll]),
    EvMismatch = [{N, maps:get(ev_count_final, S) - maps:get(verified_members, S)}
                  || {N, S} <- Res, maps:get(ev_count_final, S) =/= maps:get(verified_members, S)],
    out("   monitor_scope events vs ETS after drain: ~s~n",
        [case EvMismatch of
             [] -> "equal on every node (every join/leave notified exactly once)";
             _ -> io_lib:format("MISMATCH ~0p", [EvMismatch])
         end]),
    MB = fun(X) -> X / 1048576 end,
    Tot = [MB(maps:get(total, maps:get(mem_after, S))) || {_, S} <- Res],
    Tot0 = [MB(maps:get(total, maps:get(mem_before, S))) || {_, S} <- Res],
    PgEts = [MB(maps:get(pg_ets, maps:get(mem_after, S))) || {_, S} <- Res],
    PgProc = [MB(maps:get(pg_proc, maps:get(mem_after, S))) || {_, S} <- Res],
    out("   memory per node MiB (median): total before ~.2f after ~.2f; pg ETS table ~.3f; pg scope process ~.3f~n",
        [median(Tot0), median(Tot), median(PgEts), median(PgProc)]),
    out("RESULT ~s | conv_max_ms=~.1f conv_median_ms=~.1f mem_total_mib_median=~.2f~n",
        [Title, lists:max(Conv), median(Conv), median(Tot)]).

fmt_stats(#{n := N, median := Md, p90 := P90, p99 := P99, max := Mx, mean := Mn, min := Mi}) ->
    io_lib:format("n=~p min=~.1f median=~.1f p90=~.1f p99=~.1f max=~.1f mean=~.1f (us)",
                  [N, Mi, Md, P90, P99, Mx, Mn]).
