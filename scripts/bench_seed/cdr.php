<?php
// The seed's CDR script (shared/seed/astercc-cdr-example.txt), written as its outline
// says and no better, so that the push benchmark can measure that approach beside
// cdrlog: one PHP file per event, MySQL via mysqli, a CDR row created on the CALLEE's
// ringing (SELECT, then INSERT when there is none) and updated on its answer and hangup.
// What the outline leaves implicit is done the plainest way: the agent's phone is "known
// when the agent logs in", so a login stores it; the team is the push URL's; eventTime
// may be epoch seconds. Connections are persistent: the approach at its best.

declare(strict_types=1);

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function db(): mysqli
{
    $db = new mysqli('p:' . getenv('SEED_DB_HOST'), getenv('SEED_DB_USER'),
        getenv('SEED_DB_PASSWORD') ?: '', getenv('SEED_DB_NAME'), (int) getenv('SEED_DB_PORT'));
    $db->set_charset('utf8mb4');
    return $db;
}

// eventTime as MySQL's DATETIME: UTC text as it comes, epoch seconds converted.
function event_time(string $value): string
{
    return is_numeric($value) ? gmdate('Y-m-d H:i:s', (int) $value) : $value;
}

function agent_phone(mysqli $db, string $orgidentity, string $agentno): string
{
    $query = $db->prepare('SELECT agentphone FROM agent WHERE orgidentity=? AND agentno=?');
    $query->bind_param('ss', $orgidentity, $agentno);
    $query->execute();
    $row = $query->get_result()->fetch_row();
    return $row === null ? '' : (string) $row[0];
}

function login(mysqli $db, array $data, string $orgidentity): void
{
    $agentno = (string) ($data['agentno'] ?? '');
    $agentphone = (string) ($data['agentphone'] ?? '');
    $query = $db->prepare('REPLACE INTO agent (orgidentity, agentno, agentphone) VALUES (?, ?, ?)');
    $query->bind_param('sss', $orgidentity, $agentno, $agentphone);
    $query->execute();
}

function cdr(mysqli $db, array $data, string $orgidentity): void
{
    if (($data['calltype'] ?? '') != 'dialout' || ($data['source'] ?? '') != 'CALLEE') {
        return;
    }
    $diallogid = (string) ($data['sessionid'] ?? '');
    $time = event_time((string) ($data['eventTime'] ?? ''));
    $event = $data['event'] ?? '';
    if ($event == 'ringing') {
        // agent dial out, customer ring, call start
        $agentno = (string) ($data['agentno'] ?? '');
        $src = (string) ($data['agentphone'] ?? agent_phone($db, $orgidentity, $agentno));
        $dst = (string) ($data['activenum'] ?? '');
        $exists = $db->prepare('SELECT * FROM cdr WHERE diallogid=? LIMIT 1');
        $exists->bind_param('s', $diallogid);
        $exists->execute();
        if ($exists->get_result()->fetch_row() === null) {
            // just in case we received duplicated events
            $insert = $db->prepare('INSERT INTO cdr SET src=?, dst=?, starttime=?,'
                . " disposition='NOANSWER', target='DialOut', diallogid=?, agentno=?, orgidentity=?");
            $insert->bind_param('ssssss', $src, $dst, $time, $diallogid, $agentno, $orgidentity);
            $insert->execute();
        }
    } elseif ($event == 'answer') {
        $update = $db->prepare("UPDATE cdr SET disposition='ANSWER', answertime=?"
            . ' WHERE diallogid=? LIMIT 1');
        $update->bind_param('ss', $time, $diallogid);
        $update->execute();
    } elseif ($event == 'hangup') {
        $update = $db->prepare('UPDATE cdr SET endtime=? WHERE diallogid=? LIMIT 1');
        $update->bind_param('ss', $time, $diallogid);
        $update->execute();
    }
}

$data = $_POST;
$orgidentity = (string) ($data['orgidentity'] ?? $_SERVER['SEED_TEAM'] ?? '');
$db = db();
if (($data['event'] ?? '') == 'login') {
    login($db, $data, $orgidentity);
} else {
    cdr($db, $data, $orgidentity);
}
$body = '{"status":"stored"}';
header('Content-Type: application/json');
header('Content-Length: ' . strlen($body));
echo $body;
