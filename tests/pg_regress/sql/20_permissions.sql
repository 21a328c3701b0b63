-- What a plain login role cannot do: change the trust anchors, weaken the settings, or make
-- claims appear without a verified token. Also the PostgREST header fallback and token_status().
\set ECHO none
\i sql/_tokens.psql
\set ECHO all
\set VERBOSITY default
\pset null '(null)'
set client_min_messages = warning;
drop role if exists app_user;
reset client_min_messages;

create extension if not exists pg_oidc_authz;
insert into oidc.issuers (issuer, audiences, jwks)
values (:'iss', array[:'aud'], :'jwks_asym'::jsonb);
create role app_user login;
set role app_user;

-- The issuer configuration is neither readable nor writable.
select issuer from oidc.issuers;
\echo :SQLSTATE
insert into oidc.issuers (issuer, audiences, jwks) values ('https://evil.test', '{api://test}', '{"keys": []}');
\echo :SQLSTATE
update oidc.issuers set audiences = '{api://evil}';
\echo :SQLSTATE
delete from oidc.issuers;
\echo :SQLSTATE

-- Settings that weaken checks are superuser-only. The library is loaded in this session
-- (CREATE EXTENSION loaded it), so these are the real settings, not placeholders.
select oidc.sub();
set oidc.max_token_bytes = 100000;
\echo :SQLSTATE
select set_config('oidc.max_token_bytes', '100000', false);
\echo :SQLSTATE
set oidc.header_fallback = off;
\echo :SQLSTATE
set oidc.cache_size = 0;
\echo :SQLSTATE
alter role app_user set oidc.max_token_bytes = 100000;
\echo :SQLSTATE
show oidc.max_token_bytes;
show oidc.header_fallback;
show oidc.cache_size;

-- Claims come only from a verified token, never from a settable claims variable.
set request.jwt.claims = '{"sub": "alice", "iss": "https://issuer.test", "scope": "admin"}';
set request.jwt.claim.sub = 'alice';
select oidc.sub(), oidc.claims(), oidc.has_scope('admin');
reset request.jwt.claims;
reset request.jwt.claim.sub;

-- PostgREST fallback: with oidc.token empty, the bearer token of request.headers is used.
begin;
select set_config('request.headers', '{"authorization":"Bearer ' || :'tok_alice' || '"}', true) is not null as headers_set;
select oidc.sub(), oidc.token_status() ->> 'source' as source;
commit;
select oidc.sub();
-- oidc.token wins over the header
begin;
select set_config('request.headers', '{"authorization":"Bearer ' || :'tok_bob' || '"}', true) is not null as headers_set;
set local oidc.token = :'tok_alice';
select oidc.sub(), oidc.token_status() ->> 'source' as source;
commit;
-- a superuser can turn the fallback off
reset role;
set oidc.header_fallback = off;
set role app_user;
begin;
select set_config('request.headers', '{"authorization":"Bearer ' || :'tok_alice' || '"}', true) is not null as headers_set;
select oidc.sub(), oidc.token_status() ->> 'present' as present;
commit;
reset role;
reset oidc.header_fallback;
set role app_user;

-- token_status() never raises; expires_in depends on the clock, so it is shown apart.
select oidc.token_status() - 'expires_in' as status, oidc.token_status() ->> 'expires_in' as expires_in;
begin;
set local oidc.token = :'tok_alice';
select oidc.token_status() - 'expires_in' as status,
       (oidc.token_status() ->> 'expires_in')::numeric > 0 as expires_in_positive;
commit;
begin;
set local oidc.token = :'tok_expired';
select oidc.token_status() - 'expires_in' as status,
       (oidc.token_status() ->> 'expires_in')::numeric < 0 as expires_in_negative;
commit;
begin;
set local oidc.token = :'tok_forged';
select oidc.token_status() - 'expires_in' as status;
commit;
begin;
set local oidc.token = 'not a token';
select oidc.token_status() - 'expires_in' as status;
commit;

-- Claim accessors are STABLE (never IMMUTABLE: the token changes between statements);
-- nothing in the schema is LEAKPROOF (their errors depend on their input).
reset role;
select p.proname, p.provolatile, p.proparallel, p.proleakproof, p.prosecdef
from pg_proc p
where p.pronamespace = 'oidc'::regnamespace
  and p.proname in ('claims', 'claim', 'claim_text', 'sub', 'uid', 'issuer', 'scopes', 'has_scope',
                    'has_any_scope', 'has_all_scopes', 'roles', 'has_role', 'token_status')
order by 1;
select p.proname
from pg_proc p
where p.pronamespace = 'oidc'::regnamespace and p.proleakproof
order by 1;

drop role app_user;
drop extension pg_oidc_authz;
